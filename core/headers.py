"""`Headers`: the read-only, case-insensitive header mapping users read responses through.

HTTP header names ignore case (RFC 9110 5.1), so ``headers["Content-Type"]``,
``headers.get("content-type")`` and ``"CONTENT-TYPE" in headers`` all find the same field,
whatever spelling the server or the transport used. Response heads, raw responses and status
errors all expose their headers as one of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union, overload

__all__ = ["SECRET_HEADERS", "Headers", "HeadersLike", "redact"]

# Header fields that carry credentials: shown as "***" in every repr, log line and error.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]]]


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with the values of credential fields replaced by ``***``."""
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


class Headers(Mapping[str, str]):
    """Response headers: an immutable mapping whose lookups ignore the case of names.

    Names are kept (and iterated) in lower case; a field sent more than once holds its values
    joined by ``", "`` in arrival order, as HTTP allows. Equality with any mapping compares
    names case-insensitively and values exactly, so ``headers == {"Content-Type": "x"}`` holds
    whatever the spelling. The repr hides credentials (``authorization``, ``cookie``, ...).
    """

    __slots__ = ("_store",)

    _store: dict[str, str]

    def __init__(self, headers: HeadersLike | None = None) -> None:
        if isinstance(headers, Headers):
            self._store = headers._store  # immutable: safe to share
            return
        store: dict[str, str] = {}
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in items:
                key = name.lower()
                store[key] = f"{store[key]}, {value}" if key in store else value
        self._store = store

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._store[name.lower()]

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    @overload
    def get(self, name: str, default: Any) -> Any: ...

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name`` (any case), or ``default``."""
        if not isinstance(name, str):
            return default
        return self._store.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._store == other._store
        if isinstance(other, Mapping):
            if not all(isinstance(name, str) for name in other):
                return False
            return self._store == Headers(other)._store
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable mappings' rule: equal to dicts, unhashable

    def __repr__(self) -> str:
        return f"Headers({redact(self._store)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Headers, (dict(self._store),))
