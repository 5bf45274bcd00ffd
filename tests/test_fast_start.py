"""`facepriv --help` and `facepriv models list` start without torch (issue 14: fast start).

Timing is for bench/; here the cause is pinned: neither path may import torch (~3 s of the
start-up on these machines) or a model's network module.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "onnxruntime", "facepriv_core.models.human_models",
         "facepriv_core.models.formats.tfjs_graph", "facepriv_core.models.deepface_adapter")


@pytest.mark.parametrize("argv", [["--help"], ["models", "list"], ["models", "list", "--json"]])
def test_start_imports_no_torch(argv: list[str]) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from facepriv_core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert out.getvalue().strip(), 'no output'\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
