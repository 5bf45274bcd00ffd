"""The `facepriv` command.

One module per verb (`*_cmd.py`), each with `register(subparsers)`; heavy libraries are
imported inside the command functions so `facepriv --help` stays fast. Every failure a user
can fix is a FacePrivError: one line on stderr, exit code 2. Anything else is a bug: one line
and a pointer to --debug, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from facepriv_core import __version__
from facepriv_core.cli import (
    audit_cmd,
    data_cmd,
    models_cmd,
    plugins_cmd,
    protect_cmd,
    train_cmd,
    verify_cmd,
)
from facepriv_core.cli._common import UsageError, parse_sets

__all__ = ["UsageError", "build_parser", "main", "parse_sets"]

VERBS = (models_cmd, plugins_cmd, data_cmd, verify_cmd, protect_cmd, audit_cmd, train_cmd)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facepriv", description="Audit face-privacy defences.")
    p.add_argument("--version", action="version", version=f"facepriv {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback when something unexpected fails")
    sub = p.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from facepriv_core.errors import FacePrivError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FacePrivError as exc:
        print(f"facepriv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facepriv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            print(f"facepriv: error: {exc}", file=sys.stderr)
            return 2
        if args.debug:
            raise
        print(f"facepriv: unexpected failure ({type(exc).__name__}: {exc}); "
              "run with --debug for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
