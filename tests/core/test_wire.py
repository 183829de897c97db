"""aligneai.core.wire: the wire protocol's facts, checked against the OpenAPI document."""

from __future__ import annotations

import json
import typing
from urllib.parse import urlsplit

import aligneai.core.operations
from aligneai.core import wire
from aligneai.testing.contract import load_openapi

DOC = load_openapi()
TEXT = json.dumps(DOC).lower()


def test_the_values_are_the_documented_ones() -> None:
    # Written down from the API's documentation (docs/errors-and-retries.md, the README).
    assert wire.API_PREFIX == "/v1"
    assert (wire.EMBEDDINGS_PATH, wire.MODELS_PATH) == ("/embeddings", "/models")
    assert wire.MAX_INPUTS == 2048
    assert wire.ENCODING_FORMATS == ("float", "base64")
    assert (wire.RETRY_AFTER, wire.RETRY_AFTER_MS) == ("retry-after", "retry-after-ms")
    assert (wire.SHOULD_RETRY, wire.REQUEST_ID) == ("x-should-retry", "x-request-id")
    assert (wire.EVENT_EMBEDDING, wire.EVENT_DONE, wire.EVENT_ERROR) == (
        "embedding",
        "done",
        "error",
    )


def test_the_openapi_document_agrees() -> None:
    assert {urlsplit(server["url"]).path for server in DOC["servers"]} == {wire.API_PREFIX}
    assert {wire.EMBEDDINGS_PATH, wire.MODELS_PATH} <= set(DOC["paths"])
    schemas = DOC["components"]["schemas"]
    request = schemas["EmbeddingRequest"]
    assert set(request["properties"]) == wire.EMBEDDING_REQUEST_FIELDS
    assert request["properties"]["encoding_format"]["enum"] == list(wire.ENCODING_FORMATS)
    documented_headers = [
        wire.RETRY_AFTER,
        wire.RETRY_AFTER_MS,
        wire.SHOULD_RETRY,
        wire.REQUEST_ID,
        wire.RATELIMIT_LIMIT_REQUESTS,
        wire.RATELIMIT_REMAINING_REQUESTS,
        wire.RATELIMIT_RESET_REQUESTS,
        wire.RATELIMIT_LIMIT_TOKENS,
        wire.RATELIMIT_REMAINING_TOKENS,
        wire.RATELIMIT_RESET_TOKENS,
        wire.EVENT_STREAM_CONTENT_TYPE,
    ]
    assert [name for name in documented_headers if f'"{name}"' not in TEXT] == []


def test_header_names_are_lower_case() -> None:
    names = [
        value for name, value in vars(wire).items() if name.isupper() and isinstance(value, str)
    ]
    headers = [value for value in names if value.startswith("x-") or "-" in value]
    assert headers and all(value == value.lower() for value in headers)


def test_encoding_formats_match_the_literal_type() -> None:
    assert typing.get_args(wire.EncodingFormat) == wire.ENCODING_FORMATS


def test_the_old_homes_hand_out_the_same_constants() -> None:
    # aligneai.core.operations.MAX_INPUTS / EncodingFormat are documented: they stay importable.
    assert aligneai.core.operations.MAX_INPUTS is wire.MAX_INPUTS
    assert aligneai.core.operations.EncodingFormat is wire.EncodingFormat
