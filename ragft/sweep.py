"""Kept for scripts: `python -m ragft.sweep run|seeds ...` is `ragft sweep|seeds ...` (ragft/experiments/sweep.py)."""

import sys

from ragft.cli import main

if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["--help"]
    raise SystemExit(main([{"run": "sweep"}.get(command, command), *rest]))
