"""``python -m cloverleaf`` runs the command line."""

import sys

from .node.cli import main

sys.exit(main())
