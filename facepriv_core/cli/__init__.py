"""The `facepriv` command.

One module per verb (`*_cmd.py`), each with `register(subparsers)`; heavy libraries are
imported inside the command functions so `facepriv --help` stays fast. Every failure a user
can fix is a FacePrivError: one line on stderr, exit code 2. Anything else is a bug: one line
and a pointer to --debug, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from facepriv_core import __version__
from facepriv_core.cli import (
    audit_cmd,
    data_cmd,
    models_cmd,
    plugins_cmd,
    protect_cmd,
    report_cmd,
    serve_cmd,
    train_cmd,
    verify_cmd,
)
from facepriv_core.cli._common import UsageError, parse_sets

__all__ = ["UsageError", "build_parser", "main", "parse_sets"]

VERBS = (models_cmd, plugins_cmd, data_cmd, verify_cmd, protect_cmd, audit_cmd, report_cmd,
         train_cmd, serve_cmd)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where to look, not the usage block."""

    def error(self, message: str) -> typing.NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def one_line(text: str, limit: int = 600) -> str:
    """`text` on one line, shortened: error messages never spill over many lines."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="facepriv", description="Audit face-privacy defences.")
    p.add_argument("--version", action="version", version=f"facepriv {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback when something unexpected fails")
    sub = p.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A FacePrivError (the user can fix it) is one line and exit code 2; a
    pydantic ValidationError that escaped a validate() call is explained the same way; any
    other exception is a bug: one line naming it, a pointer to --debug, exit code 1."""
    from facepriv_core.errors import FacePrivError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args))
    except FacePrivError as exc:
        if args.debug:
            raise
        print(f"facepriv: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facepriv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except Exception as exc:
        if args.debug:
            raise
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            from facepriv_core.validation import explain

            print(f"facepriv: error: invalid {exc.title}: {one_line(explain(exc))}",
                  file=sys.stderr)
            return 2
        print(f"facepriv: unexpected failure ({type(exc).__name__}: {one_line(str(exc), 300)}"
              "); this is a bug in FacePriv: run with --debug for the traceback",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
