"""`Headers`: the one read-only, case-insensitive header mapping, for requests and responses.

HTTP header names ignore case (RFC 9110 5.1), so ``headers["Content-Type"]``,
``headers.get("content-type")`` and ``"CONTENT-TYPE" in headers`` all find the same field,
whatever spelling the server, the transport or the caller used. Requests (`Request.headers`, a
prepared call's headers, the client's base headers), response heads, raw responses and status
errors all hold their headers as one of these. Requests send the names in lower case, which
HTTP/1.1 allows (and HTTP/2 requires).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, NoReturn, Optional, TypeVar, Union, overload

__all__ = ["SECRET_HEADERS", "HeaderChanges", "Headers", "HeadersLike", "redact"]

# Header fields that carry credentials: shown as "***" in every repr, log line and error.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]]]
#: Changes to apply with `Headers.merged`: a str sets the field, None removes it (any case).
HeaderChanges = Mapping[str, Optional[str]]  # a run-time alias: no `|` on 3.9


_V = TypeVar("_V")


def redact(headers: Mapping[str, _V]) -> dict[str, _V | str]:
    """A copy of ``headers`` with the values of credential fields replaced by ``***``.

    Any values are kept as they are otherwise (a None of header overrides too).
    """
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def _refuse_non_str(pairs: list[Any]) -> None:
    """Raise a TypeError naming the first field whose name or value is no str (never a value)."""
    for pair in pairs:
        name, value = pair
        if not isinstance(name, str):
            raise TypeError(f"Headers: a header name must be a str, got {type(name).__name__}")
        if not isinstance(value, str):
            raise TypeError(
                f"Headers: the value of header {name.lower()!r} must be a str, "
                f"got {type(value).__name__}"
            )


# Looked up once: Headers blocks its own mutators, so its builders call dict's directly.
_new_dict = dict.__new__
_update = dict.update


class Headers(dict[str, str]):
    """HTTP headers: a read-only dict whose lookups ignore the case of names.

    Names are kept (and iterated) in lower case; a field sent more than once holds its values
    joined by ``", "`` in arrival order, as HTTP allows. ``headers["Content-Type"]``,
    ``headers.get("content-type")`` and ``"CONTENT-TYPE" in headers`` find the same field.
    Equality with any mapping compares names case-insensitively and values exactly. It is a
    ``dict`` so that ``json.dumps(headers)`` and ``dict(headers)`` work as they did; changing
    it raises `TypeError`; `merged` makes a changed copy. The repr hides credentials
    (``authorization``, ``cookie``, ...). A name or value that is no ``str`` raises `TypeError`.
    """

    __slots__ = ()

    def __init__(self, headers: HeadersLike | None = None) -> None:
        if isinstance(headers, Headers):
            dict.__init__(self, headers)
            return
        store: dict[str, str] = {}
        if headers:
            pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
            # One C-level pass for the usual head (no field twice, whatever the case); a
            # repeated field shrinks the dict, and only then are values joined one by one.
            try:
                store = {name.lower(): value for name, value in pairs}
                # Only str names and values go on the wire (a None would be sent as "None"):
                # one C-level join each checks them all, and raises TypeError otherwise.
                "".join(store)
                "".join(store.values())
            except (TypeError, AttributeError):
                _refuse_non_str(pairs)
                raise
            if len(store) != len(pairs):
                _refuse_non_str(pairs)  # a repeated field's earlier values were not joined
                store = {}
                for name, value in pairs:
                    key = name.lower()
                    store[key] = f"{store[key]}, {value}" if key in store else value
        dict.__init__(self, store)

    @classmethod
    def from_lower(
        cls, fields: Mapping[str, str], more: Mapping[str, str] | None = None
    ) -> Headers:
        """Headers holding ``fields``, then ``more``, as they are: no pass over the names.

        A fast path for builders that already hold lower-case names with one value each (the
        core builds the request headers of every attempt this way); anything else goes through
        the constructor, which lower-cases names and joins repeated fields.
        """
        headers = _new_dict(cls)
        _update(headers, fields)
        if more:
            _update(headers, more)
        return headers

    @classmethod
    def from_items(cls, items: Collection[tuple[str, str]]) -> Headers:
        """Headers from a sized collection of ``(name, value)`` pairs, any case: a fast path.

        For a transport's response head (a multidict's ``items()``, whose names keep the
        server's spelling): the names are lowered in one C-level pass, with no check of what
        kind of mapping or iterable was given. A repeated field, or a name or value that is no
        ``str``, goes through the constructor, which joins or refuses it as it always does.
        """
        try:
            store = {name.lower(): value for name, value in items}
            # Only str names and values: one C-level check of each, as in the constructor.
            "".join(store)
            "".join(store.values())
        except (TypeError, AttributeError, ValueError):
            return cls(list(items))  # raises the constructor's TypeError, naming the field
        if len(store) != len(items):  # a repeated field: the constructor joins its values
            return cls(list(items))
        headers = _new_dict(cls)
        _update(headers, store)
        return headers

    def merged(self, changes: HeaderChanges) -> Headers:
        """A copy with ``changes`` applied: a str value sets the field, None removes it.

        Names match whatever their case (``merged({"X-Team": None})`` removes ``x-team``); a
        later change of the same name wins. Values are taken as they are: check user input
        first (``aligneai.core.options.validate_header_overrides``).
        """
        headers = _new_dict(Headers)
        _update(headers, self)
        for name, value in changes.items():
            key = name.lower()
            if value is None:
                dict.pop(headers, key, None)
            else:
                dict.__setitem__(headers, key, value)
        return headers

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        value: str = dict.__getitem__(self, name.lower())
        return value

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    @overload
    def get(self, name: str, default: Any) -> Any: ...

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name`` (any case), or ``default``."""
        if not isinstance(name, str):
            return default
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return dict.__eq__(self, other)
        if isinstance(other, Mapping):
            if not all(isinstance(name, str) for name in other):
                return False
            return dict.__eq__(self, Headers(other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # unhashable, as a dict

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("Headers are read-only; copy them with dict(headers) to change them")

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __repr__(self) -> str:
        return f"Headers({redact(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # dict subclasses pickle by replaying __setitem__, which is blocked: rebuild instead.
        return (Headers, (dict(self),))

    def __copy__(self) -> Headers:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Headers:
        return self
