"""Command line: swycc {demo, train, reconstruct, encode, decode, eval, info, ...}.

Thin front: parses arguments, validates every input before writing anything, and turns a bad
input into one ``swycc: error: ...`` line (exit codes: ``swycc.cli.args``). Every verb group is a
module of this package with one ``register(subparsers)`` function, listed in ``VERB_GROUPS``.
"""

from __future__ import annotations

import argparse
import sys

from swycc.cli import (autoencoder, codec, dit, distill, eval, experiment, generate,
                       latent_stats, photoset, ship_check, web)
from swycc.cli.args import EXIT_BAD_INPUT, EXIT_DIVERGED, apply_threads, check_out_outside_inputs

# the verb groups, in --help order; each module's register(subparsers) adds its verbs
VERB_GROUPS = (autoencoder, eval, experiment, photoset, dit, generate, distill, ship_check,
               latent_stats, codec, web)


class UsageError(ValueError):
    """A command line that argparse refused: reported as the one ``swycc: error:`` line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises UsageError instead of printing the usage block
    and exiting, so it ends in the same one error line (exit 2) as every other bad input."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="swycc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    for group in VERB_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
    except UsageError as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from swycc.errors import USER_ERRORS
    from swycc.train.distributed import close_after_success
    from swycc.train.loop import TrainingDivergedError

    apply_threads(args)  # --threads, before any work
    try:
        check_out_outside_inputs(args)
        code = int(args.func(args) or 0)
        close_after_success()  # under torchrun: every rank leaves together
        return code
    except TrainingDivergedError as e:
        print(f"swycc: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except USER_ERRORS as e:
        from swycc.io.files import disk_full_error, is_disk_full

        if isinstance(e, OSError) and is_disk_full(e):  # one message, whichever writer it was
            e = disk_full_error(e.filename)
        print(f"swycc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("swycc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
