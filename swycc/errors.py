"""Errors that mean bad input (a file, an option, a checkpoint), not a bug.

The CLI turns these into one ``swycc: error: ...`` line and exit status 2. Every specific input
error of the package (ImageError, CheckpointError, LatentsError, ConfigMismatchError, ...)
subclasses ValueError; OSError covers missing and unreadable files.
"""

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
