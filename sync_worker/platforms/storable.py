"""Text PostgreSQL cannot store: NUL characters and lone UTF-16 surrogates (invalid UTF-8).

JSON can carry both as escapes (`\\u0000`, `\\ud800`); `text` and `jsonb` reject them.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|d[89a-f])", re.IGNORECASE)
_UNSTORABLE_ESCAPE_BYTES = re.compile(_UNSTORABLE_ESCAPE.pattern.encode(), re.IGNORECASE)


def has_unstorable_escape(json_text: str | bytes) -> bool:
    """Whether this JSON text may decode to something `storable` would change."""
    if isinstance(json_text, bytes):
        return _UNSTORABLE_ESCAPE_BYTES.search(json_text) is not None
    return _UNSTORABLE_ESCAPE.search(json_text) is not None


def storable(value: Any) -> Any:
    """`value` with NULs removed and lone surrogates replaced in every string."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value
