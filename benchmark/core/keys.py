"""Short stable digests of JSON-like data: cell fingerprints and data keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists, recursively (as JSON would store it)."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def digest(data: Any, length: int = 12) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``data`` as sorted JSON."""
    text = json.dumps(jsonable(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
