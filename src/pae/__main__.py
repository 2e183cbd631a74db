"""`python -m pae ...` runs the command line (pae.cli)."""

import sys

from pae.cli import main

sys.exit(main())
