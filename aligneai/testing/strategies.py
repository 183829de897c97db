"""Hypothesis strategies for property-based tests against the AligneAI wire contract.

This module needs `hypothesis <https://hypothesis.readthedocs.io>`_ (``pip install hypothesis``);
``import aligneai.testing`` alone does not. Everything generated is valid under the API's
contract (``aligneai/core/openapi.json``): typed models for code that consumes the client's
results, wire JSON for code that parses the API's answers, request bodies, event streams and
texts. Every float is exactly representable as a float32, so ``base64`` payloads decode to the
very same values as ``float`` ones::

    from hypothesis import given
    from aligneai.testing import strategies as ast

    @given(ast.create_embedding_responses(dimensions=8))
    def test_index(response):
        my_index.add(response.to_numpy())

Sizes take an ``int`` or a strategy of ints; the defaults stay small so that tests run fast.
"""

from __future__ import annotations

import functools
import json
import math
import string
import struct
from collections.abc import Mapping
from typing import Any, Optional, Union, get_args, overload

import attrs
from hypothesis import strategies as st

from aligneai.core.converter import default_converter
from aligneai.core.models import (
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingStreamDone,
    Model,
    ModelList,
    Usage,
    WireModel,
)
from aligneai.core.wire import (
    EVENT_DONE,
    EVENT_EMBEDDING,
    EVENT_ERROR,
    MAX_INPUTS,
    RATELIMIT_LIMIT_REQUESTS,
    RATELIMIT_LIMIT_TOKENS,
    RATELIMIT_REMAINING_REQUESTS,
    RATELIMIT_REMAINING_TOKENS,
    RATELIMIT_RESET_REQUESTS,
    RATELIMIT_RESET_TOKENS,
    EncodingFormat,
)
from aligneai.testing import _api
from aligneai.testing._embedder import to_base64
from aligneai.testing._ratelimit import format_reset, retry_after_headers

__all__ = [
    "SSEStream",
    "create_embedding_payloads",
    "create_embedding_responses",
    "embedding_request_bodies",
    "embedding_stream_dones",
    "embedding_vectors",
    "embeddings",
    "error_payloads",
    "inputs",
    "model_lists",
    "models",
    "rate_limit_headers",
    "sse_streams",
    "texts",
    "to_wire",
    "usages",
    "wire_extra_fields",
]

Size = Union[int, st.SearchStrategy[int]]

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_ID_ALPHABET = string.ascii_lowercase + string.digits + "-._:"

_MODEL_IDS = st.one_of(
    st.sampled_from(sorted(_api.MODELS)),
    st.text(_ID_ALPHABET, min_size=1, max_size=40),
)
_BOOLEANS = st.booleans()


# Hypothesis spends more time building strategies than drawing from simple ones, so the
# composites below draw from strategies built once (here or in these caches), never per draw.
@functools.lru_cache(maxsize=256)
def _int_range(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@functools.lru_cache(maxsize=256)
def _exact_bytes(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


@functools.lru_cache(maxsize=64)
def _permutations(size: int) -> st.SearchStrategy[list[int]]:
    return st.permutations(list(range(size)))


def _sizes(
    value: Size | None, default: st.SearchStrategy[int], name: str, low: int
) -> st.SearchStrategy[int]:
    """``value`` as a strategy of ints (``default`` when None); a fixed int is range-checked."""
    if value is None:
        return default
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low} or a strategy, got {value!r}")
    return st.just(value)


def _check_encoding(encoding_format: object) -> None:
    if encoding_format not in get_args(EncodingFormat):
        raise ValueError(f"encoding_format must be 'float' or 'base64', got {encoding_format!r}")


# -- wire helpers -----------------------------------------------------------------------------


def to_wire(model: WireModel, encoding_format: EncodingFormat = "float") -> dict[str, Any]:
    """Return the wire JSON of a model: plain dicts and lists, vectors encoded as asked.

    With ``"base64"`` every vector becomes base64 of little-endian float32 values, as the API
    sends it for ``encoding_format="base64"``::

        payload = to_wire(response, "base64")
        assert default_converter().structure(payload, CreateEmbeddingResponse) == response
    """
    _check_encoding(encoding_format)
    wire: dict[str, Any] = default_converter().unstructure(model)
    if encoding_format == "base64":
        items = wire["data"] if isinstance(model, CreateEmbeddingResponse) else None
        if isinstance(model, Embedding):
            items = [wire]
        for item in items or ():
            item["embedding"] = to_base64(item["embedding"])
    return wire


# Unknown fields come from small pools: one draw per field, and the names never matter.
_EXTRA_VALUES = st.sampled_from(
    [None, True, False, 0, -1, _INT64_MAX, 1.5, -2.5e-300, "", "text", "\u00e9\u2603\U0001f600",
     [], {}, [1, "a", None], {"nested": {"deeper": [0.25, {"k": False}]}}]
)  # fmt: skip
# The contract has no field starting with "x_", so these never shadow a real one.
_EXTRA_KEYS = st.sampled_from(
    ["x_created", "x_fingerprint", "x_region", "x_meta", "x_truncated", "x_", "x_\u00fcnicode",
     "x_warnings", "x_latency_ms", "x_debug"]
)  # fmt: skip


def wire_extra_fields(min_size: int = 0, max_size: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown fields (names starting with ``x_``, any JSON values) a newer server may add.

    Clients must ignore them::

        @given(create_embedding_payloads(), wire_extra_fields(min_size=1))
        def test_tolerant(payload, extra):
            parse(payload | extra)
    """
    return st.dictionaries(_EXTRA_KEYS, _EXTRA_VALUES, min_size=min_size, max_size=max_size)


_SOME_EXTRAS = wire_extra_fields(min_size=1)
_MAYBE_EXTRAS = wire_extra_fields()


def _with_extras(draw: st.DrawFn, obj: dict[str, Any], some: bool = False) -> dict[str, Any]:
    return {**obj, **draw(_SOME_EXTRAS if some else _MAYBE_EXTRAS)}


# -- inputs and request bodies ----------------------------------------------------------------


def texts(*, max_size: int = 64) -> st.SearchStrategy[str]:
    """One valid input text: a non-empty string of any Unicode (no lone surrogates).

    Example::

        @given(texts())
        def test_embed_one(text):
            assert len(client.embeddings.create(inputs=text).data) == 1
    """
    return st.text(st.characters(codec="utf-8"), min_size=1, max_size=max_size)


def inputs(*, max_inputs: int = 16, max_size: int = 64) -> st.SearchStrategy[str | list[str]]:
    """A valid ``inputs`` value: one text, or a list of 1 to ``max_inputs`` texts.

    Example::

        @given(inputs())
        def test_count(value):
            expected = 1 if isinstance(value, str) else len(value)
            assert len(client.embeddings.create(inputs=value).data) == expected
    """
    if not 1 <= max_inputs <= MAX_INPUTS:
        raise ValueError(f"max_inputs must be between 1 and {MAX_INPUTS}, got {max_inputs}")
    one = texts(max_size=max_size)
    return st.one_of(one, st.lists(one, min_size=1, max_size=max_inputs))


_ENCODINGS = st.sampled_from(get_args(EncodingFormat))


@st.composite
def _request_bodies(
    draw: st.DrawFn,
    input_values: st.SearchStrategy[str | list[str]],
    model_ids: st.SearchStrategy[str],
    known: Mapping[str, int],
    may_omit_model: bool,
    stream: bool | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": draw(input_values)}
    size = known.get(_api.DEFAULT_MODEL, 0)
    if not may_omit_model or draw(_BOOLEANS):
        model_id = draw(model_ids)
        body["model"] = model_id
        size = known[model_id]
    if draw(_BOOLEANS):
        body["encoding_format"] = draw(_ENCODINGS)
    if draw(_BOOLEANS):
        body["dimensions"] = draw(_int_range(1, size))
    if stream is True:
        body["stream"] = True
    elif draw(_BOOLEANS):
        body["stream"] = False if stream is False else draw(_BOOLEANS)
    return body


def embedding_request_bodies(
    *,
    max_inputs: int = 16,
    models: Mapping[str, int] | None = None,
    stream: bool | None = False,
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``POST /embeddings`` JSON bodies, which the server answers with 200.

    ``models`` maps the model ids a body may name to their sizes (``dimensions`` is never
    larger); by default the `LocalServer`'s models, and ``model`` may then be omitted. Optional
    fields come and go. ``stream``: False never streams, True always does, None either way::

        @given(embedding_request_bodies())
        def test_server(body):
            assert requests.post(url, json=body, headers=auth).status_code == 200
    """
    if models is None:
        known = {model_id: info.dimensions for model_id, info in _api.MODELS.items()}
        may_omit = True
    else:
        known = dict(models)
        may_omit = False
        if not known or any(
            not isinstance(size, int) or isinstance(size, bool) or size < 1
            for size in known.values()
        ):
            raise ValueError("models must map at least one id to a positive int size")
    if not 1 <= max_inputs <= MAX_INPUTS:
        raise ValueError(f"max_inputs must be between 1 and {MAX_INPUTS}, got {max_inputs}")
    return _request_bodies(
        inputs(max_inputs=max_inputs, max_size=24),
        st.sampled_from(sorted(known)),
        known,
        may_omit,
        stream,
    )


# -- typed models -----------------------------------------------------------------------------


_FLOAT32_MAX = 3.4028234663852886e38
_UNIT_SCALE = float(1 << 23)  # k / 2**23 is exactly a float32 for every |k| <= 2**23
# Edge cases laid over the random bulk: signed zeros, the smallest subnormal and normal, values
# with long binary expansions, the largest float32, integers at the edge of exactness.
_SPECIALS = (0.0, -0.0, 1.0, -1.0, 1.401298464324817e-45, -1.1754943508222875e-38,
             0.10000000149011612, -0.3333333432674408, 0.9999999403953552, 16777216.0,
             _FLOAT32_MAX, -_FLOAT32_MAX)  # fmt: skip
_UNIT_SPECIALS = tuple(v for v in _SPECIALS if abs(v) <= 1.0)


@functools.lru_cache(maxsize=256)
def _overlays(count: int, bounded: bool) -> st.SearchStrategy[list[tuple[int, float]]]:
    specials = st.sampled_from(_UNIT_SPECIALS if bounded else _SPECIALS)
    return st.lists(st.tuples(_int_range(0, count - 1), specials), max_size=3)


@st.composite
def _matrix(draw: st.DrawFn, rows: int, size: int, bounded: bool) -> list[list[float]]:
    """``rows`` vectors of ``size`` float32-exact values, from as few draws as possible.

    Hypothesis pays per draw, so the bulk comes from one byte string (zero bytes shrink to
    0.0), with at most a few edge-case values laid over it.
    """
    count = rows * size
    raw = draw(_exact_bytes(4 * count))
    flat: list[float]
    if bounded:
        # k in [-2**23, 2**23], with zero bytes giving 0.0
        steps = [word % (2**24 + 1) for word in struct.unpack(f"<{count}I", raw)]
        flat = [(k if k <= 2**23 else k - 2**24 - 1) / _UNIT_SCALE for k in steps]
    else:
        # NaN and infinity are no JSON: a non-finite bit pattern becomes the largest float32.
        flat = [
            v if math.isfinite(v) else math.copysign(_FLOAT32_MAX, v)
            for v in struct.unpack(f"<{count}f", raw)
        ]
    for position, value in draw(_overlays(count, bounded)):
        flat[position] = value
    return [flat[row * size : (row + 1) * size] for row in range(rows)]


@functools.lru_cache(maxsize=256)
def _matrices(rows: int, size: int, bounded: bool) -> st.SearchStrategy[list[list[float]]]:
    result: st.SearchStrategy[list[list[float]]] = _matrix(rows, size, bounded)
    return result


@st.composite
def _vectors(draw: st.DrawFn, sizes: st.SearchStrategy[int], bounded: bool) -> list[float]:
    return draw(_matrices(1, draw(sizes), bounded))[0]


def embedding_vectors(
    dimensions: Size | None = None, *, bounded: bool = False
) -> st.SearchStrategy[list[float]]:
    """Vectors of ``dimensions`` float32-exact, finite floats (default: 1 to 16 of them).

    Components range over all finite float32 values; ``bounded=True`` keeps them in [-1, 1],
    as real embeddings are (so that dot products stay finite)::

        @given(embedding_vectors(4, bounded=True))
        def test_similarity(vector):
            assert my_cosine(vector, vector) in (0.0, pytest.approx(1.0))
    """
    return _vectors(_sizes(dimensions, st.integers(1, 16), "dimensions", 1), bounded)


@overload
def embeddings(
    dimensions: Size | None = ..., *, index: Size | None = ..., encoding: None = ...
) -> st.SearchStrategy[Embedding]: ...


@overload
def embeddings(
    dimensions: Size | None = ..., *, index: Size | None = ..., encoding: EncodingFormat
) -> st.SearchStrategy[dict[str, Any]]: ...


def embeddings(
    dimensions: Size | None = None,
    *,
    index: Size | None = None,
    encoding: EncodingFormat | None = None,
) -> st.SearchStrategy[Embedding] | st.SearchStrategy[dict[str, Any]]:
    """One embedding item: a typed `Embedding`, or with ``encoding`` its wire JSON.

    ``encoding="float"`` or ``"base64"`` gives the item as it appears in ``data`` and as the
    data of an ``embedding`` stream event::

        @given(embeddings(dimensions=8))
        def test_item(item):
            assert len(item.embedding) == 8

        @given(embeddings(encoding="base64"))
        def test_event(item):
            handle_event("embedding", json.dumps(item))
    """
    typed = st.builds(
        Embedding,
        index=_sizes(index, st.integers(0, MAX_INPUTS - 1), "index", 0),
        embedding=embedding_vectors(dimensions),
    )
    if encoding is None:
        return typed
    _check_encoding(encoding)
    return typed.map(lambda item: to_wire(item, encoding))


_TOKENS = st.integers(0, _INT32_MAX // 2)


@st.composite
def _usages(draw: st.DrawFn) -> Usage:
    prompt = draw(_TOKENS)
    return Usage(prompt_tokens=prompt, total_tokens=prompt + draw(_TOKENS))


def usages() -> st.SearchStrategy[Usage]:
    """Token counts: non-negative, with ``total_tokens >= prompt_tokens``.

    Example::

        @given(usages())
        def test_billing(usage):
            assert cost(usage) >= 0
    """
    return _USAGES


_USAGES: st.SearchStrategy[Usage] = _usages()


@st.composite
def _responses(
    draw: st.DrawFn,
    n: st.SearchStrategy[int],
    dims: st.SearchStrategy[int],
    shuffled: bool,
    bounded: bool,
) -> CreateEmbeddingResponse:
    count = draw(n)
    if not 1 <= count <= MAX_INPUTS:
        raise ValueError(f"n must draw from 1 to {MAX_INPUTS}, drew {count}")
    size = draw(dims)
    vectors = draw(_matrices(count, size, bounded))
    data = [Embedding(index=i, embedding=vector) for i, vector in enumerate(vectors)]
    if shuffled:
        data = [data[i] for i in draw(_permutations(count))]
    return CreateEmbeddingResponse(data=data, model=draw(_MODEL_IDS), usage=draw(_USAGES))


def create_embedding_responses(
    n: Size | None = None,
    dimensions: Size | None = None,
    *,
    shuffled: bool = False,
    bounded: bool = False,
) -> st.SearchStrategy[CreateEmbeddingResponse]:
    """Typed answers to ``embeddings.create``: ``n`` items of one size, indexes ``0..n-1``.

    ``data`` is in index order, as the client returns it; ``shuffled=True`` permutes it (the
    API may send items in any order), for code that must not assume the order. ``bounded``
    is as for `embedding_vectors`::

        @given(create_embedding_responses(n=3, dimensions=st.integers(1, 64), bounded=True))
        def test_matrix(response):
            assert response.to_numpy().shape[0] == 3
    """
    return _responses(
        _sizes(n, st.integers(1, 8), "n", 1),
        _sizes(dimensions, st.integers(1, 16), "dimensions", 1),
        shuffled,
        bounded,
    )


def embedding_stream_dones() -> st.SearchStrategy[EmbeddingStreamDone]:
    """The ``done`` event of an embeddings stream, typed.

    Example::

        @given(embedding_stream_dones())
        def test_done(done):
            assert done.usage.total_tokens >= done.usage.prompt_tokens
    """
    return st.builds(EmbeddingStreamDone, model=_MODEL_IDS, usage=_USAGES)


def models() -> st.SearchStrategy[Model]:
    """Typed `Model` objects (``GET /models/{id}``).

    Example::

        @given(models())
        def test_pick(model):
            assert choose_dimensions(model) <= model.dimensions
    """
    return st.builds(
        Model,
        id=_MODEL_IDS,
        created=st.integers(0, _INT32_MAX),
        owned_by=st.text(_ID_ALPHABET, min_size=1, max_size=20),
        dimensions=st.integers(1, 8192),
    )


def model_lists(*, max_size: int = 5) -> st.SearchStrategy[ModelList]:
    """Typed `ModelList` objects (``GET /models``), with distinct model ids.

    Example::

        @given(model_lists())
        def test_menu(listing):
            assert len(render_menu(listing)) == len(listing.data)
    """
    return st.builds(
        ModelList, data=st.lists(models(), max_size=max_size, unique_by=lambda m: m.id)
    )


# -- wire payloads ----------------------------------------------------------------------------


@st.composite
def _payloads(
    draw: st.DrawFn,
    responses: st.SearchStrategy[CreateEmbeddingResponse],
    encoding_format: EncodingFormat,
    extra_fields: bool,
) -> dict[str, Any]:
    payload = to_wire(draw(responses), encoding_format)
    if extra_fields:
        payload = _with_extras(draw, payload, some=True)
        payload["data"] = [_with_extras(draw, item) for item in payload["data"]]
        payload["usage"] = _with_extras(draw, payload["usage"])
    return payload


def create_embedding_payloads(
    encoding_format: EncodingFormat = "float",
    *,
    n: Size | None = None,
    dimensions: Size | None = None,
    shuffled: bool = False,
    extra_fields: bool = False,
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``POST /embeddings`` answers as wire JSON (what ``json.loads`` of the body gives).

    ``extra_fields=True`` adds unknown fields (see `wire_extra_fields`): at least one at the
    top level, maybe more in items and ``usage``. ``shuffled=True`` sends ``data`` out of index
    order::

        @given(create_embedding_payloads("base64", extra_fields=True))
        def test_parse(payload):
            httpserver.expect_request("/v1/embeddings").respond_with_json(payload)
            assert len(client.embeddings.create(inputs="x").data) == len(payload["data"])
    """
    _check_encoding(encoding_format)
    return _payloads(
        create_embedding_responses(n, dimensions, shuffled=shuffled), encoding_format, extra_fields
    )


def error_payloads(status: int, *, extra_fields: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Error bodies ``{"error": {...}}`` for an HTTP ``status`` (400 to 599).

    ``type`` follows the status as the API does; ``code`` and ``param`` are null or strings. For
    several statuses, flat-map::

        @given(st.sampled_from([429, 500, 503]).flatmap(
            lambda s: error_payloads(s).map(lambda body: (s, body))))
        def test_retry(pair):
            status, body = pair
            ...
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"status must be an int from 400 to 599, got {status!r}")
    return _error_payloads(status, extra_fields)


_MESSAGES = st.text(min_size=1, max_size=40)
_CODES = st.none() | st.text(string.ascii_lowercase + "_", min_size=1, max_size=30)
_PARAMS = st.none() | st.sampled_from(["inputs", "model", "dimensions", "encoding_format"])


@st.composite
def _error_payload(draw: st.DrawFn, status: int, extra_fields: bool) -> dict[str, Any]:
    payload = _api.error_payload(status, draw(_MESSAGES), code=draw(_CODES), param=draw(_PARAMS))
    if extra_fields:
        payload = _with_extras(draw, payload)
        payload["error"] = _with_extras(draw, payload["error"])
    return payload


@functools.cache
def _error_payloads(status: int, extra_fields: bool) -> st.SearchStrategy[dict[str, Any]]:
    result: st.SearchStrategy[dict[str, Any]] = _error_payload(status, extra_fields)
    return result


# -- event streams ----------------------------------------------------------------------------


@attrs.frozen
class SSEStream:
    """One generated embeddings stream and what a correct client makes of it.

    Attributes:
        body: the ``text/event-stream`` body, as bytes.
        events: the ``(event type, decoded data)`` pairs, in order.
        items: the typed embeddings, in arrival order (only those before an error).
        done: the typed ``done`` event, or None for a stream that ends with ``error``.
        error: the data of the ``error`` event (``{"error": {...}, "status": int}``), or None.
    """

    body: bytes
    events: tuple[tuple[str, dict[str, Any]], ...]
    items: tuple[Embedding, ...]
    done: Optional[EmbeddingStreamDone]  # noqa: UP045 - attrs may evaluate this on 3.9
    error: Optional[dict[str, Any]]  # noqa: UP045

    @property
    def response(self) -> CreateEmbeddingResponse | None:
        """The equivalent non-streaming answer (items by index), or None after an error."""
        if self.done is None:
            return None
        data = sorted(self.items, key=lambda item: item.index)
        return CreateEmbeddingResponse(data=data, model=self.done.model, usage=self.done.usage)


_EOLS = ("\n", "\r\n", "\r", "\n")
_NOISE = (": keep-alive", ":", "id: 7", "retry: 1000", "x-note: ignored")


def _frame(event: str, data: dict[str, Any], style: int) -> str:
    """One event in SSE framing; ``style`` 0 is exactly the API's, others vary within SSE rules.

    The bits of ``style`` pick the line ending (CRLF, CR), data split over several lines, no
    space after the colons, and up to three comments or ignorable fields between the lines.
    One draw per event keeps generation fast, and it shrinks to the API's plain framing.
    """
    if style == 0:
        return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
    eol = _EOLS[style & 3]
    text = json.dumps(data, indent=1 if style & 4 else None, separators=(",", ":"))
    space = "" if style & 8 else " "
    lines = [f"event:{space}{event}"] + [f"data:{space}{line}" for line in text.split("\n")]
    for k in range((style >> 4) & 3):  # comments and ignorable fields fit between any lines
        lines.insert((style >> (6 + k)) % (len(lines) + 1), _NOISE[(style >> (2 * k + 3)) % 5])
    return eol.join(lines) + eol + eol


_STYLES = st.integers(0, 1023)
_STREAM_ERROR_STATUSES = st.sampled_from([400, 401, 404, 422, 429, 500, 502, 503])


@st.composite
def _streams(
    draw: st.DrawFn,
    responses: st.SearchStrategy[CreateEmbeddingResponse],
    encoding_format: EncodingFormat,
    varied: bool,
    error: bool,
) -> SSEStream:
    response = draw(responses)
    items = list(response.data)
    events: list[tuple[str, dict[str, Any]]] = [
        (EVENT_EMBEDDING, to_wire(item, encoding_format)) for item in items
    ]
    done: EmbeddingStreamDone | None = None
    error_data: dict[str, Any] | None = None
    if error:
        cut = draw(_int_range(0, len(items)))
        status = draw(_STREAM_ERROR_STATUSES)
        error_data = {"error": draw(_error_payloads(status, False))["error"], "status": status}
        items, events = items[:cut], [*events[:cut], (EVENT_ERROR, error_data)]
    else:
        done = EmbeddingStreamDone(model=response.model, usage=response.usage)
        events.append((EVENT_DONE, to_wire(done)))
    text = "".join(_frame(event, data, draw(_STYLES) if varied else 0) for event, data in events)
    prefix = "\ufeff" if varied and draw(_BOOLEANS) else ""
    body = (prefix + text).encode("utf-8")
    return SSEStream(body, tuple(events), tuple(items), done, error_data)


def sse_streams(
    *,
    n: Size | None = None,
    dimensions: Size | None = None,
    encoding_format: EncodingFormat = "float",
    shuffled: bool = True,
    varied_framing: bool = True,
    error: bool = False,
) -> st.SearchStrategy[SSEStream]:
    """Valid ``stream=True`` answers as bytes, with the items and ``done`` they carry.

    Items arrive in any index order (``shuffled=False``: in order). ``varied_framing`` uses the
    freedom SSE gives (CRLF/CR line ends, a BOM, comments, ``id``/``retry``/unknown fields,
    data split over several lines); False frames every event exactly as the API does.
    ``error=True`` ends the stream with an ``error`` event after some of the items::

        @given(sse_streams(), st.data())
        def test_decoder(stream, data):
            cut = data.draw(st.integers(0, len(stream.body)))
            items = decoder.feed(stream.body[:cut]) + decoder.feed(stream.body[cut:])
            assert sorted(items, key=index) == stream.response.data
    """
    _check_encoding(encoding_format)
    return _streams(
        create_embedding_responses(n, dimensions, shuffled=shuffled),
        encoding_format,
        varied_framing,
        error,
    )


# -- rate-limit headers -----------------------------------------------------------------------


@st.composite
def _rate_limit_headers(
    draw: st.DrawFn, requests: bool | None, tokens: bool | None, retry: bool
) -> dict[str, str]:
    headers: dict[str, str] = {}
    budgets = (
        (
            requests,
            RATELIMIT_LIMIT_REQUESTS,
            RATELIMIT_REMAINING_REQUESTS,
            RATELIMIT_RESET_REQUESTS,
        ),
        (tokens, RATELIMIT_LIMIT_TOKENS, RATELIMIT_REMAINING_TOKENS, RATELIMIT_RESET_TOKENS),
    )
    for present, limit_name, remaining_name, reset_name in budgets:
        if present is None:
            present = draw(_BOOLEANS)
        if not present:
            continue
        limit = draw(st.integers(1, 10**9))
        headers[limit_name] = str(limit)
        headers[remaining_name] = str(draw(st.integers(0, limit)))
        reset = draw(st.floats(0.0, 3600.0, allow_nan=False, allow_infinity=False))
        headers[reset_name] = format_reset(reset)
    if retry:
        wait = draw(st.floats(0.001, 120.0, allow_nan=False, allow_infinity=False))
        headers.update(retry_after_headers(wait))
    return headers


def rate_limit_headers(
    *, requests: bool | None = None, tokens: bool | None = None, retry: bool = False
) -> st.SearchStrategy[dict[str, str]]:
    """The ``x-ratelimit-*`` headers an answer may carry, as the contract documents them.

    For each budget (``requests``, ``tokens``): ``True`` always includes its three headers
    (``limit``, ``remaining`` <= ``limit``, ``reset`` such as ``"120ms"`` or ``"1.5s"``),
    ``False`` never, None either. ``retry=True`` adds a 429's ``retry-after`` (whole seconds,
    rounded up) and ``retry-after-ms``::

        @given(rate_limit_headers(tokens=True, retry=True))
        def test_my_limiter_reads_headers(headers):
            ...
    """
    return _rate_limit_headers(requests, tokens, retry)
