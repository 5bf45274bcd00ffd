"""`facepriv serve --ui streamlit|gradio`: start a front end from a source checkout."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from facepriv_core.cli._common import bounded_int
from facepriv_core.errors import UsageError

CHECKOUT = Path(__file__).resolve().parents[2]


def cmd_serve(args: argparse.Namespace) -> int:
    if not (CHECKOUT / "app" / "main.py").is_file():
        raise UsageError("the front ends live in the FacePriv repository (app/, pages/): run "
                         "`facepriv serve` from a clone, not from an installed wheel")
    env = dict(os.environ)
    if args.ui == "gradio":
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise UsageError("the Gradio front end needs the gradio extra: "
                             "pip install '.[gradio]'") from None
        env.update(GRADIO_SERVER_NAME=args.host, GRADIO_SERVER_PORT=str(args.port or 7860))
        command = [sys.executable, "-m", "app.gradio_app"]
    else:
        command = [sys.executable, "-m", "streamlit", "run", "app/main.py",
                   "--server.address", args.host, "--server.port", str(args.port or 8501)]
    return subprocess.call(command, cwd=CHECKOUT, env=env)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="start the browser app (Streamlit) or the Gradio front end")
    s.add_argument("--ui", choices=("streamlit", "gradio"), default="streamlit",
                   help="which front end (default streamlit; gradio for ZeroGPU Spaces and an API)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=bounded_int(1, 65535), default=None,
                   help="port (default 8501 for streamlit, 7860 for gradio)")
    s.set_defaults(func=cmd_serve)
