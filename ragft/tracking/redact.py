"""Secrets never reach MLflow, reports or logs: masking of secret-looking keys and values, and of
the password in a URI.

A key is secret-looking when its last dotted part *is* a secret name (hf_token, api_key, password),
not when it merely contains one (max_new_tokens, api_key_env: the name of a variable, not its value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_KEY = re.compile(
    r"(?:^|\.)(?:[\w-]*[_-])?(api[_-]?key|access[_-]?key|token|secret|password|passwd|credentials?|auth)$",
    re.IGNORECASE,
)
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+"
    r"|(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"  # user:password@ in a URL
    r"|(?<=[?&]api_key=)[^&\s]+|(?<=[?&]apikey=)[^&\s]+|(?<=[?&]token=)[^&\s]+"  # ?api_key=... in a URL
    r"|(?<=[?&]access_token=)[^&\s]+|(?<=[?&]key=)[^&\s]+|(?<=[?&]auth=)[^&\s]+)",
    re.IGNORECASE,
)
MASK = "***"


def mask_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """Replace values of secret-looking keys, and secret-looking values, by ***."""
    out = {}
    for key, value in params.items():
        if SECRET_KEY.search(str(key)) and value not in (None, "", False):
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = SECRET_VALUE.sub(MASK, value)
        else:
            out[key] = value
    return out


def redact_uri(uri: str) -> str:
    """A URI without its password (postgresql://user:pw@host/db → postgresql://user:***@host/db)."""
    return re.sub(r"(//[^/:@]*:)[^/]*@", r"\1***@", uri)
