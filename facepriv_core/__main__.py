"""`python -m facepriv_core` runs the `facepriv` command."""

import sys

from facepriv_core.cli import main

sys.exit(main())
