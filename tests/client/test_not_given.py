"""NOT_GIVEN keeps the client's setting, None means none, overrides merge (issue #13 item 3).

Through both clients and the real wire: what the server receives and how often.
"""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

import aligneai
from aligneai import NOT_GIVEN, AligneAI, AsyncAligneAI, Timeout
from aligneai.core.errors import InvalidArgumentTypeError
from aligneai.resources.embeddings import AsyncEmbeddings, Embeddings, EmbeddingsWithRawResponse
from aligneai.resources.models import AsyncModels, Models


def test_with_options_arguments_left_out_keep_everything(api: Any) -> None:
    client = api.make(timeout=Timeout(connect=2, read=10, total=30), max_retries=4)
    same = client.with_options()
    assert (same.timeout, same.max_retries) == (client.timeout, 4)
    explicit = client.with_options(timeout=NOT_GIVEN, max_retries=NOT_GIVEN)
    assert (explicit.timeout, explicit.max_retries) == (client.timeout, 4)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (20, Timeout(connect=2, read=20, total=30)),
        (1, Timeout(connect=1, read=1, total=30)),
        (None, Timeout(connect=2, read=None, total=30)),
        (Timeout(read=99), Timeout(connect=2, read=99, total=30)),
        (Timeout(total=None), Timeout(connect=2, read=10, total=None)),
        (Timeout(connect=5, read=60, total=None), Timeout(connect=5, read=60, total=None)),
    ],
)
def test_with_options_timeout_merges_field_by_field(api: Any, value: Any, expected: Any) -> None:
    client = api.make(timeout=Timeout(connect=2, read=10, total=30))
    derived = client.with_options(timeout=value)
    assert derived.timeout == expected
    assert client.timeout == Timeout(connect=2, read=10, total=30)  # unchanged


def test_the_constructor_reads_none_and_numbers_over_the_defaults(api: Any) -> None:
    assert api.make(timeout=None).timeout == Timeout(connect=5, read=None, total=None)
    assert api.make(timeout=3).timeout == Timeout(connect=3, read=3, total=None)
    assert api.make(timeout=Timeout(total=9)).timeout == Timeout(connect=5, read=60, total=9)


def test_max_retries_none_is_refused_with_directions(api: Any, server: Any) -> None:
    server.reply_embeddings()
    for attempt in (
        lambda: api.client.embeddings.create(inputs="a", max_retries=None),
        lambda: api.client.models.list(max_retries=None),
        lambda: api.client.with_options(max_retries=None),
    ):
        with pytest.raises(InvalidArgumentTypeError) as info:
            attempt()
        assert info.value.argument == "max_retries"
        assert "NOT_GIVEN" in str(info.value) and "omit" in str(info.value)
    assert server.count == 0


def test_max_retries_not_given_per_call_keeps_the_clients(api: Any, server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"error": {"message": "busy"}}, status=503))
    client = api.make(max_retries=1)
    with pytest.raises(aligneai.InternalServerError):
        client.models.list(max_retries=NOT_GIVEN)
    assert server.count == 2
    with pytest.raises(aligneai.InternalServerError):
        client.models.list(max_retries=0)
    assert server.count == 3


def test_a_none_extra_header_removes_a_default_header_for_one_call(api: Any, server: Any) -> None:
    server.reply_embeddings()
    client = api.make(default_headers={"X-Team": "search"})

    client.embeddings.create(inputs="a", extra_headers={"x-team": None, "X-AligneAI-OS": None})
    client.embeddings.create(inputs="a")

    first, second = server.requests
    assert "X-Team" not in first.headers and "X-AligneAI-OS" not in first.headers
    assert second.headers["X-Team"] == "search" and "X-AligneAI-OS" in second.headers


def test_with_options_default_headers_merge_and_none_removes(api: Any, server: Any) -> None:
    server.reply_embeddings()
    client = api.make(default_headers={"X-Team": "search", "X-Keep": "1"})
    derived = client.with_options(
        default_headers={"X-TEAM": None, "x-aligneai-os": None, "X-New": "n"}
    )
    restored = derived.with_options(default_headers={"x-team": "again"})

    derived.embeddings.create(inputs="a")
    restored.embeddings.create(inputs="a")
    client.embeddings.create(inputs="a")

    first, second, third = server.requests
    assert "X-Team" not in first.headers and "X-AligneAI-OS" not in first.headers
    assert first.headers["X-Keep"] == "1" and first.headers["X-New"] == "n"
    assert second.headers["X-Team"] == "again" and "X-AligneAI-OS" not in second.headers
    assert third.headers["X-Team"] == "search" and "X-New" not in third.headers
    assert "X-AligneAI-OS" in third.headers


def test_with_options_default_headers_none_is_refused(api: Any) -> None:
    with pytest.raises(InvalidArgumentTypeError) as info:
        api.client.with_options(default_headers=None)
    assert info.value.argument == "default_headers"
    assert "NOT_GIVEN" in str(info.value)


def test_a_derived_client_pickles_with_its_merged_settings() -> None:
    client = AligneAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1", timeout=Timeout(total=7))
    try:
        derived = client.with_options(timeout=3, default_headers={"X-AligneAI-OS": None})
        copy = pickle.loads(pickle.dumps(derived))
        try:
            assert copy.timeout == Timeout(connect=3, read=3, total=7)
            assert "x-aligneai-os" not in {name.lower() for name in copy._preparer.headers}
        finally:
            copy.close()
    finally:
        client.close()


PUBLIC_METHODS = [
    AligneAI.with_options,
    AsyncAligneAI.with_options,
    Embeddings.create,
    Embeddings.create_matrix,
    EmbeddingsWithRawResponse.create,
    EmbeddingsWithRawResponse.create_matrix,
    AsyncEmbeddings.create,
    AsyncEmbeddings.create_matrix,
    Models.list,
    Models.retrieve,
    AsyncModels.list,
    AsyncModels.retrieve,
]


@pytest.mark.parametrize("method", PUBLIC_METHODS, ids=lambda m: m.__qualname__)
def test_every_override_defaults_to_not_given(method: Any) -> None:
    parameters = inspect.signature(method).parameters
    for name in ("timeout", "max_retries", "default_headers"):
        if name in parameters:
            assert parameters[name].default is NOT_GIVEN, name
    assert "timeout" in parameters and "max_retries" in parameters
