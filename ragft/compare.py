"""Kept for scripts: `python -m ragft.compare ...` is `ragft compare ...` (ragft/experiments/compare.py)."""

import sys

from ragft.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["compare", *sys.argv[1:]]))
