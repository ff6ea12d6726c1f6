"""Process environment for every ragft entry point: offline switches and quiet libraries.

The switches live in ``offline.env`` beside this file so that the Makefile (``include``) and
Python (this module) read the same list. Values already set by the user win, so
``HF_HUB_OFFLINE=0 make demo`` still lets a machine with hub access download models.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_ENV_FILE = Path(__file__).with_name("offline.env")


def offline_env() -> dict[str, str]:
    """The switches of ``offline.env`` as a dict."""
    env = {}
    for line in OFFLINE_ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def apply_offline_env() -> None:
    for key, value in offline_env().items():
        os.environ.setdefault(key, value)
