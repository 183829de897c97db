"""The per-call fast paths of issue 16 decide exactly as the general paths they shortcut.

- `loads_piecewise` (large list answers decoded one item at a time) against one decode of the
  whole body: the same value with the same key order, or an error whenever the whole fails.
- `build_valid_answer` (a plainly valid embeddings answer built without cattrs) against the
  general path (cattrs, then the `AnswerContract` check) and a direct model of validity.
- The sync driver's view of a urllib3 head (its merged items) against `Headers` of its pairs.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
import urllib3
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aligneai.core import _json
from aligneai.core.answer_contract import AnswerContract, check_answer, usage_problem
from aligneai.core.converter import default_converter
from aligneai.core.errors import APIResponseValidationError
from aligneai.core.headers import Headers
from aligneai.core.models import CreateEmbeddingResponse
from aligneai.core.operations import CallOptions, create_embeddings
from aligneai.core.parsing import build_valid_answer, parse_embeddings
from aligneai.core.response import ResponseHead
from aligneai.transports.sync_driver import response_head

HEAD = ResponseHead(200, {"x-request-id": "req-1"})

# -- loads_piecewise ------------------------------------------------------------------------

# Strings that look like the structure the pieces are cut at.
tricky_text = st.sampled_from(["", "}", "]", "},{", '"data":[', "\\", 'a"b', "{", "é", "\u2028"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    tricky_text,
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=6,
)
embedding_items = st.fixed_dictionaries(
    {
        "object": st.just("embedding"),
        "index": st.integers(0, 5),
        "embedding": st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
    }
)
items = st.one_of(
    embedding_items,
    embedding_items,  # twice: most answers hold only these
    st.dictionaries(tricky_text, values, max_size=3),
    values,  # not an object: the pieces give up
)
extra_members = st.dictionaries(st.sampled_from(["model", "usage", "data", "x", "object"]), values)
whitespace = st.sampled_from(["", " ", "\n", "\t\r\n ", "\f", "\v"])


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A list answer as some server could write it: whitespace, key order, extra members."""
    data = draw(st.lists(items, max_size=4))
    with_object = draw(st.booleans())
    extra = draw(extra_members)
    ws = draw(whitespace)
    sep_ws = draw(whitespace)  # between items
    edge_ws = draw(whitespace)  # after "[" and before "]"
    members = []
    if with_object:
        members.append(f'"object"{ws}:{ws}"list"')
    body_items = ("," + sep_ws).join(json.dumps(item, ensure_ascii=False) for item in data)
    members.append(f'"data"{ws}:{ws}[{edge_ws}{body_items}{edge_ws}]')
    members += [f"{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}" for k, v in extra.items()]
    text = ws + "{" + ws + ("," + ws).join(members) + ws + "}" + ws
    raw = text.encode("utf-8")
    if draw(st.booleans()):  # damage it: the pieces must fail (or agree) as the whole does
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"}", b"]", b",", b'"', b"\xff", b""])) + raw[at:]
    return raw


def whole(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", _json._loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", type(exc)


def pieces(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", _json.loads_piecewise(body)
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", type(exc)


def ordered(value: Any) -> Any:
    """The value with the order of every object's keys made visible (dicts compare unordered)."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


@settings(max_examples=400)
@given(documents())
@example(b'{"data":[{"a":1},\x0c{"a":2}]}')  # \f is no JSON whitespace
@example(b'{"data":[{"a":1}\x0b,{"a":2}]}')
def test_pieces_decode_exactly_as_the_whole(body: bytes) -> None:
    expected, got = whole(body), pieces(body)
    assert got[0] == expected[0]
    if expected[0] == "ok":
        assert ordered(got[1]) == ordered(expected[1])
    else:
        assert got[1] == expected[1]


@settings(max_examples=200)
@given(documents())
def test_pieces_decode_exactly_as_the_whole_with_the_standard_json(body: bytes) -> None:
    # Without orjson the pieces are bytes for json.loads: the same guarantee.
    saved = _json._loads, _json._ORJSON
    _json._loads, _json._ORJSON = json.loads, False
    try:
        expected, got = whole(body), pieces(body)
        decoded = _json._decode_in_pieces(float_answer(2, 3))
    finally:
        _json._loads, _json._ORJSON = saved
    assert decoded is not None
    assert got[0] == expected[0]
    if expected[0] == "ok":
        assert ordered(got[1]) == ordered(expected[1])


def float_answer(n: int, dims: int, *, spaced: bool = False) -> bytes:
    data = [
        {"object": "embedding", "index": i, "embedding": [i + j / 8 for j in range(dims)]}
        for i in range(n)
    ]
    document = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": n}}
    if spaced:
        return json.dumps(document, indent=2).encode()
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.mark.parametrize("spaced", [False, True])
def test_a_real_answer_is_decoded_in_pieces(spaced: bool) -> None:
    body = float_answer(3, 4, spaced=spaced)
    decoded = _json._decode_in_pieces(body)  # not the fallback: the pieces did the work
    assert decoded is not None
    assert ordered(decoded) == ordered(json.loads(body))
    assert list(decoded) == ["object", "data", "model", "usage"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":[{"a":"}"}],"model":"m"}',  # a "}" in a string
        b'{"data":[{"a":{"b":1}}],"model":"m"}',  # a nested object
        b'{"data":[{"a":1}],"data":[]}',  # a later "data" wins
        b'{"model":"m","data":[{"a":1}]}',  # "data" not first: not recognised
        b'{"data":[1,2]}',  # items that are not objects
        b'{"data":[{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}]}',  # deep
    ],
)
def test_shapes_the_pieces_leave_to_the_whole(body: bytes) -> None:
    assert _json._decode_in_pieces(body) is None
    assert ordered(_json.loads_piecewise(body)) == ordered(json.loads(body))


def test_loads_takes_the_pieces_for_a_large_body_only() -> None:
    large = float_answer(128, 2048)
    assert len(large) >= _json.PIECEWISE_MIN_BYTES
    assert ordered(_json.loads(large)) == ordered(json.loads(large))
    assert _json.loads("[1]") == [1] and _json.loads(b" {} ") == {}
    with pytest.raises(ValueError):
        _json.loads(large[:-1])


# -- build_valid_answer ---------------------------------------------------------------------


def b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


finite = st.floats(min_value=-4, max_value=4, width=32)
vectors = st.one_of(
    st.lists(finite, min_size=1, max_size=3),
    st.lists(finite, min_size=1, max_size=3).map(b64),
    st.sampled_from([[], [math.nan], [True, 1.0], [1, "2"], "!!", "AAA=", None, 3]),
)
indexes = st.one_of(st.integers(-1, 4), st.sampled_from([False, True, 0.0, 1.0, "0", None]))
answer_items = st.fixed_dictionaries(
    {"index": indexes, "embedding": vectors},
    optional={"object": st.sampled_from(["embedding", 1, None]), "extra": st.integers()},
)
counts = st.one_of(st.integers(-1, 9), st.sampled_from([True, 1.5, None]))
answers = st.fixed_dictionaries(
    {},
    optional={
        "object": st.sampled_from(["list", None, 2]),
        "data": st.one_of(st.lists(answer_items, max_size=4), st.just({})),
        "model": st.sampled_from(["m", None, 7]),
        "usage": st.one_of(
            st.fixed_dictionaries({}, optional={"prompt_tokens": counts, "total_tokens": counts}),
            st.just([]),
        ),
        "more": st.integers(),
    },
)
contracts = st.builds(
    AnswerContract, st.one_of(st.none(), st.integers(1, 4)), st.one_of(st.none(), st.integers(1, 3))
)


def general_path(data: Any, contract: AnswerContract) -> CreateEmbeddingResponse | None:
    """What the client did before the fast path: cattrs, then the contract; None: refused."""
    try:
        response = default_converter().structure(data, CreateEmbeddingResponse)
    except Exception:
        return None
    problem = check_answer(
        contract, ((e.index, len(e.embedding)) for e in response.data)
    ) or usage_problem(response.usage.prompt_tokens, response.usage.total_tokens)
    return None if problem else response


def plainly_valid(data: Any, contract: AnswerContract) -> bool:
    """A direct model of the answers the fast path must take: in order, exact JSON types."""
    if not isinstance(data, dict) or data.get("object", "list") != "list":
        return False
    usage, rows = data.get("usage"), data.get("data")
    if data.get("model") != "m" or not isinstance(usage, dict) or not isinstance(rows, list):
        return False
    tokens = [usage.get("prompt_tokens"), usage.get("total_tokens")]
    if not all(type(t) is int and t >= 0 for t in tokens) or not rows:
        return False
    if contract.inputs is not None and len(rows) != contract.inputs:
        return False
    lengths = set()
    for position, row in enumerate(rows):
        vector = row["embedding"]
        if type(row["index"]) is not int or row["index"] != position:
            return False
        if row.get("object", "embedding") != "embedding":
            return False
        if isinstance(vector, str):
            if vector in ("!!", "AAA="):
                return False
            lengths.add(len(base64.b64decode(vector)) // 4)
        elif isinstance(vector, list) and vector and all(type(v) is float for v in vector):
            if any(math.isnan(v) for v in vector):
                return False
            lengths.add(len(vector))
        else:
            return False
    return len(lengths) == 1 and contract.dimensions in (None, *lengths)


VALID_ROW = {"index": 0, "embedding": [1.0]}
USAGE = {"prompt_tokens": 1, "total_tokens": 1}


@settings(max_examples=500)
@given(answers, contracts)
@example(
    {"data": [{"index": False, "embedding": [1.0]}], "model": "m", "usage": USAGE}, AnswerContract()
)
@example(
    {"data": [VALID_ROW], "model": "m", "usage": {**USAGE, "total_tokens": -1}}, AnswerContract()
)
@example({"data": [VALID_ROW, VALID_ROW], "model": "m", "usage": USAGE}, AnswerContract())
@example({"data": [VALID_ROW], "model": "m", "usage": USAGE}, AnswerContract(dimensions=2))
def test_the_fast_path_agrees_with_the_general_path(
    data: dict[str, Any], contract: AnswerContract
) -> None:
    fast = build_valid_answer(data, contract)
    general = general_path(data, contract)
    assert (fast is not None) == plainly_valid(data, contract)
    if fast is not None:  # never more lenient, and the same model
        assert general is not None
        assert fast == general and dict(fast) == dict(general)
        assert [type(e) for e in fast.data] == [type(e) for e in general.data]


def test_out_of_order_answers_still_parse_through_the_general_path() -> None:
    data = {
        "data": [
            {"index": 1, "embedding": [1.0, 2.0]},
            {"index": 0, "embedding": [3.0, 4.0]},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    contract = AnswerContract(inputs=2)
    assert build_valid_answer(data, contract) is None
    parsed = parse_embeddings(HEAD, json.dumps(data).encode(), None, contract)
    assert [e.index for e in parsed.data] == [0, 1]
    assert parsed.data[0].embedding == [3.0, 4.0]


def test_a_refused_answer_still_raises_the_general_error() -> None:
    data = {"data": [{"index": 0, "embedding": [1.0]}], "model": "m", "usage": {}}
    with pytest.raises(APIResponseValidationError, match="prompt_tokens"):
        parse_embeddings(HEAD, json.dumps(data).encode(), None, AnswerContract(inputs=1))


# -- heads and shared per-call values ------------------------------------------------------


class _Urllib3Like:
    def __init__(self, headers: urllib3.HTTPHeaderDict) -> None:
        self.status_code = 200
        self.headers = headers


@given(
    st.lists(st.tuples(st.sampled_from(["A", "a", "B-x", "b-X", "c"]), st.text("xy, ")), max_size=6)
)
def test_a_urllib3_head_reads_as_its_pairs(pairs: list[tuple[str, str]]) -> None:
    headers = urllib3.HTTPHeaderDict()
    for name, value in pairs:
        headers.add(name, value)
    head = response_head(_Urllib3Like(headers))  # type: ignore[arg-type]
    expected: dict[str, list[str]] = {}
    for name, value in pairs:
        expected.setdefault(name.lower(), []).append(value)
    assert dict(head.headers) == {k: ", ".join(v) for k, v in expected.items()}
    assert isinstance(head.headers, Headers)


class _MultiDictLike:
    def __init__(self, headers: Any) -> None:
        self.status_code = 200
        self.headers = headers


@given(
    st.lists(st.tuples(st.sampled_from(["A", "a", "B-x", "b-X", "c"]), st.text("xy, ")), max_size=6)
)
def test_a_multidict_head_reads_as_its_pairs_on_every_call(pairs: list[tuple[str, str]]) -> None:
    # aiohttp's headers: a Mapping without itermerged(). Its type is remembered after the first
    # head (no attribute miss, no ABC check): the later heads must read exactly the same.
    from multidict import CIMultiDict, CIMultiDictProxy

    expected: dict[str, list[str]] = {}
    for name, value in pairs:
        expected.setdefault(name.lower(), []).append(value)
    for _ in range(3):
        head = response_head(_MultiDictLike(CIMultiDictProxy(CIMultiDict(pairs))))  # type: ignore[arg-type]
        assert dict(head.headers) == {k: ", ".join(v) for k, v in expected.items()}
        assert isinstance(head.headers, Headers) and head.status_code == 200
    fields = dict(pairs)  # a plain dict (names of different case stay apart until the head)
    joined: dict[str, list[str]] = {}
    for name, value in fields.items():
        joined.setdefault(name.lower(), []).append(value)
    plain = response_head(_MultiDictLike(fields))  # type: ignore[arg-type]
    assert dict(plain.headers) == {k: ", ".join(v) for k, v in joined.items()}


def test_calls_without_overrides_share_one_immutable_options_value() -> None:
    first, second = CallOptions.from_arguments(), CallOptions.from_arguments()
    assert first is second and first == CallOptions()
    with pytest.raises(TypeError):
        first.extra_headers["x"] = "y"  # type: ignore[index]
    assert CallOptions.from_arguments(max_retries=1).max_retries == 1


def test_an_operation_without_extra_body_sends_the_named_fields_only() -> None:
    operation = create_embeddings(inputs="a")
    assert operation.body == {"inputs": "a", "encoding_format": "base64"}
