"""What every benchmark script shares: saving its row (``--out``) and running as a script.

A benchmark is a module with ``main(argv) -> row``; bench/run.py calls ``main`` in-process, and each
script also runs alone (``python bench/<name>.py``), printing its row without the raw detail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from ragft.io import write_json


def save_row(row: dict, out: Path | None) -> dict:
    """Write ``row`` to ``out`` (atomically) when the script was given ``--out``; return it."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(out, row)
    return row


def run_script(main: Callable[[], dict]) -> None:
    """`python bench/<name>.py`: log progress to stderr, print the row's headline figures."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    print(json.dumps({k: v for k, v in main().items() if k != "detail"}, indent=2))
