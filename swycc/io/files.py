"""Opening and writing the files a run depends on, safely.

- ``regular_file``: a path about to be read as a checkpoint, weights, latents or an image must be
  a regular file. A FIFO would block the read forever; a directory, socket or device is refused
  by name, and so is a symlink loop, so that "not found" is said only of what does not exist.
- ``save_safetensors``: safetensors' writer with a full disk reported as ``OSError(ENOSPC)`` (a
  one-line error in the CLI, exit 2; safetensors itself raises its own error type) and no
  partial file left behind.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import torch


class NotRegularFileError(OSError):
    """A path that exists but is not a regular file (a FIFO, directory, socket, device, loop)."""


_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device")]


def file_kind(path: str | os.PathLike) -> str | None:
    """None for a regular file (after symlinks), else what ``path`` is: "missing", "a symlink
    loop", "a directory", "a FIFO (named pipe)", ..."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing"
        return f"unreadable ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    return next((text for test, text in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path``, checked to be a regular file (symlinks followed): FileNotFoundError when it
    does not exist, NotRegularFileError naming what it is otherwise. ``what``: the role in
    messages ("checkpoint", "image", ...)."""
    path = Path(path)
    kind = file_kind(path)
    if kind is None:
        return path
    if kind == "missing":
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", str(path))
    raise NotRegularFileError(f"{path}: is {kind}, not a regular file (expected a {what})")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError(ENOSPC/EDQUOT), or safetensors' error for the same (it wraps the OS error)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return "StorageFull" in text or "code: 28" in text or "No space left" in text


def disk_full_error(path: str | os.PathLike | None) -> OSError:
    """The one message for a full disk, naming ``path`` when known."""
    text = ("No space left on device; nothing was half-written: free space and re-run the same "
            "command (a training run resumes from its last checkpoint)")
    return OSError(errno.ENOSPC, text, str(path)) if path else OSError(errno.ENOSPC, text)


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file``; on failure the partial file is removed, and a full disk
    is an ``OSError(ENOSPC)`` naming ``path``."""
    import safetensors.torch

    try:
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    except Exception as e:
        Path(path).unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full_error(path) from None
        raise


__all__ = ["NotRegularFileError", "disk_full_error", "file_kind", "is_disk_full",
           "regular_file", "save_safetensors"]
