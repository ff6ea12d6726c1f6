"""`python -m ragft.config compose|check`: the same as `ragft config compose|check`."""

import sys

from ragft.cli import main

raise SystemExit(main(["config", *sys.argv[1:]]))
