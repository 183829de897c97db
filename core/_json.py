"""JSON encoding and decoding, with orjson as an optional speed-up.

orjson is used only when installed (the ``aligneai[orjson]`` extra); both paths produce the same
values. The check happens once, at import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Callable

__all__ = ["dumps", "loads"]

_dumps: Callable[[Any], bytes]
loads: Callable[[bytes | str], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def _dumps(value: Any) -> bytes:
        return _encoder.encode(value).encode("utf-8")

    loads = json.loads
else:  # pragma: no cover - depends on the environment
    _dumps = orjson.dumps
    loads = orjson.loads  # its JSONDecodeError subclasses ValueError, as json's does


def dumps(value: Mapping[str, Any]) -> bytes:
    """Encode a JSON object to compact UTF-8 bytes."""
    return _dumps(value)
