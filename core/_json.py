"""JSON encoding and decoding, with orjson as an optional speed-up.

orjson is used only when installed (the ``aligneai[orjson]`` extra); both paths produce the same
values. The check happens once, at import.

A large body (`PIECEWISE_MIN_BYTES` or more) shaped like a list answer, ``{"data": [{...},
...], ...}``, is decoded one item of ``data`` at a time (`loads_piecewise`): orjson builds a
whole intermediate document (about twice the body's size) before any Python object, so decoding
a 10 MiB float answer at once peaked 22 MiB higher than decoding it piece by piece, at the same
CPU. Whatever the pieces do not decode exactly as the whole would, the whole is decoded instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Callable, Union

__all__ = ["PIECEWISE_MIN_BYTES", "dumps", "loads", "loads_piecewise", "loads_whole"]

_dumps: Callable[[Any], bytes]
_loads: Callable[[Any], Any]
_ORJSON: bool

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def _dumps(value: Any) -> bytes:
        return _encoder.encode(value).encode("utf-8")

    _loads = json.loads
    _ORJSON = False
else:  # pragma: no cover - depends on the environment
    _dumps = orjson.dumps
    _loads = orjson.loads  # its JSONDecodeError subclasses ValueError, as json's does
    _ORJSON = True

# Below this, one call is as lean as the pieces (a medium answer is about 200 KiB).
PIECEWISE_MIN_BYTES = 1 << 20

# JSON's whitespace is these four bytes only (\s would also accept \f and \v, which JSON does
# not): the pieces must accept exactly what the whole would.
_WS = rb"[ \t\n\r]*"
# The document's start up to the first item of its top-level "data" array: "data" first, or
# after a plain "object" string (what servers send). A "data" key found this way is certainly
# the top-level one: nothing before it can open a nested value.
_HEAD = re.compile(
    _WS
    + rb"\{"
    + _WS
    + rb'(?:"object"'
    + _WS
    + rb":"
    + _WS
    + rb'"[A-Za-z0-9_.-]*"'
    + _WS
    + rb","
    + _WS
    + rb')?"data"'
    + _WS
    + rb":"
    + _WS
    + rb"\["
    + _WS
)
_SEPARATOR = re.compile(_WS + rb"([,\]])" + _WS)
# A piece nested deeper than this is left to the whole decoder, whose depth limit counts the
# two levels (object, array) that a piece does not have.
_MAX_PIECE_BRACKETS = 16
_DATA_KEY = b'"data"'

Bytes = Union[bytes, bytearray]


def loads_piecewise(body: Bytes) -> Any:
    """Decode ``body`` one item of its top-level ``data`` array at a time, or all at once.

    Equal to ``loads(body)`` (same value, same key order, or the same error): pieces are only
    used when each item is a flat-enough JSON object that decodes on its own, and the rest of
    the document (without the items) decodes to an object whose last ``data`` is that array;
    in any other case the whole body is decoded in one call.
    """
    result = _decode_in_pieces(body)
    return _loads(body) if result is None else result


def _decode_in_pieces(body: Bytes) -> dict[str, Any] | None:
    head = _HEAD.match(body)
    if head is None:
        return None
    # orjson reads a memoryview without copying; json needs bytes (a copy of one item).
    source: Any = memoryview(body) if _ORJSON else body
    items: list[Any] = []
    position = head.end()
    if body[position : position + 1] == b"]":
        close = position
    else:
        while True:
            if body[position : position + 1] != b"{":
                return None
            # The item's text ends at its first "}" unless that one closes a nested object or
            # sits in a string: then the piece is not a whole JSON value and fails to decode.
            end = body.find(b"}", position) + 1
            if end == 0 or body.count(b"[", position, end) > _MAX_PIECE_BRACKETS:
                return None
            try:
                items.append(_loads(source[position:end]))
            except (ValueError, TypeError, RecursionError):
                return None
            separator = _SEPARATOR.match(body, end)
            if separator is None:
                return None
            if separator.group(1) == b"]":
                close = separator.start(1)
                break
            position = separator.end()
    tail = body[close + 1 :]
    if _DATA_KEY in tail:  # a later "data" key would win over this one
        return None
    try:
        document = _loads(bytes(body[: head.end()]) + b"]" + tail)
    except (ValueError, TypeError, RecursionError):
        return None
    if type(document) is not dict or document.get("data") != []:  # pragma: no cover - by _HEAD
        return None
    document["data"] = items  # same key, same place: the order of keys is the whole's
    return document


#: Decode a whole JSON document at once (orjson's or json's ``loads``): for a body known to be
#: smaller than `PIECEWISE_MIN_BYTES`, where `loads` would do the same after one more check.
loads_whole: Callable[[Any], Any] = _loads


def loads(body: bytes | bytearray | str) -> Any:
    """Decode JSON (bytes in UTF-8, or str); large list answers piece by piece (less memory)."""
    if len(body) >= PIECEWISE_MIN_BYTES and not isinstance(body, str):
        return loads_piecewise(body)
    return _loads(body)


#: Encode a JSON object to compact UTF-8 bytes (orjson's ``dumps`` itself when installed: one
#: call less on every request).
dumps: Callable[[Mapping[str, Any]], bytes] = _dumps
