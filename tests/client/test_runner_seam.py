"""Issue 13 item 2: resources run operations through a typed runner, never the client's insides.

A runner performs any core `Operation` with its client's settings: retries, headers, parsing,
raw responses and streams come from this one place for every resource. What the resources
hold is the runner, not the client: a dropped client is freed at once (no reference cycle),
even while one of its resources is still referenced.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

import aligneai
from aligneai import AligneAI, AsyncAligneAI, AsyncRunner, ModelList, RawResponse, SyncRunner
from aligneai.core import CallOptions, create_embeddings, list_models, retrieve_model


def test_runner_performs_a_core_operation_with_the_clients_settings(server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"object": "list", "data": [wire.model_payload()]}))
    with AligneAI(
        api_key="sk-runner", base_url=server.base_url, default_headers={"X-Team": "search"}
    ) as client:
        runner = client.runner
        assert isinstance(runner, SyncRunner)
        listed = runner.request(list_models(), CallOptions())
    assert isinstance(listed, ModelList) and listed.data[0].id == "aligne-embed-1"
    sent = server.requests[-1]
    assert sent.headers["Authorization"] == "Bearer sk-runner"
    assert sent.headers["X-Team"] == "search"


def test_runner_raw_and_retries_are_the_resources_own(server: Any, wire: Any) -> None:
    server.sequence(
        "/models/m-1",
        [
            wire.json_response(wire.error_payload("busy", "server_error"), status=503),
            wire.json_response(wire.model_payload("m-1")),
        ],
    )
    with AligneAI(api_key="k", base_url=server.base_url, _sleep=lambda _s: None) as client:
        raw = client.runner.raw(retrieve_model("m-1"), CallOptions())
    assert isinstance(raw, RawResponse)
    assert raw.retries_taken == 1 and raw.status_code == 200
    assert raw.parse().id == "m-1"
    assert [r.headers["X-AligneAI-Retry-Count"] for r in server.requests[-2:]] == ["0", "1"]


def test_runner_streams(server: Any, wire: Any) -> None:
    server.reply(
        "/embeddings",
        wire.sse_response(wire.sse_body([[0.6, 0.8], [1.0, 0.0]], model="m", tokens=2)),
    )
    with AligneAI(api_key="k", base_url=server.base_url) as client:
        operation = create_embeddings(inputs=["a", "b"], stream=True, encoding_format="float")
        with client.runner.stream(operation, CallOptions()) as stream:
            vectors = {item.index: item.embedding for item in stream}
    assert vectors == {0: [0.6, 0.8], 1: [1.0, 0.0]}


def test_async_runner_performs_operations(server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"object": "list", "data": [wire.model_payload()]}))

    async def main() -> tuple[Any, Any]:
        async with AsyncAligneAI(api_key="k", base_url=server.base_url) as client:
            runner = client.runner
            assert isinstance(runner, AsyncRunner)
            listed = await runner.request(list_models(), CallOptions())
            raw = await runner.raw(list_models(), CallOptions())
            return listed, raw

    listed, raw = asyncio.run(main())
    assert listed.data[0].id == "aligne-embed-1"
    assert raw.parse() == listed


def test_async_runner_is_exported_lazily() -> None:
    assert aligneai.AsyncRunner is AsyncRunner


def test_a_copy_runs_with_its_own_settings(server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"object": "list", "data": [wire.model_payload()]}))
    with AligneAI(api_key="k", base_url=server.base_url) as client:
        copy = client.with_options(default_headers={"X-Copy": "yes"})
        copy.models.list()
        assert server.requests[-1].headers["X-Copy"] == "yes"
        client.models.list()
        assert "X-Copy" not in server.requests[-1].headers
        client.runner.request(list_models(), CallOptions())
        assert "X-Copy" not in server.requests[-1].headers
        copy.runner.request(list_models(), CallOptions())
        assert server.requests[-1].headers["X-Copy"] == "yes"


@pytest.mark.parametrize("resource", ["embeddings", "models"])
def test_a_resource_does_not_keep_its_client_alive(resource: str) -> None:
    gc.disable()  # freed by reference counting, not by the cycle collector
    try:
        client = AligneAI(api_key="k", base_url="http://127.0.0.1:9/v1")
        kept = getattr(client, resource)
        ref = weakref.ref(client)
        del client
        assert ref() is None
        assert kept.with_raw_response is not None
    finally:
        gc.enable()


def test_resources_reach_no_private_client_method() -> None:
    # The seam is the runner: the old private entry points are gone, not merely unused.
    for name in ("_call", "_call_raw", "_call_stream", "_send", "_flow"):
        assert not hasattr(AligneAI, name), name
        assert not hasattr(AsyncAligneAI, name), name


def test_an_operation_of_the_wrong_kind_is_refused_before_anything_is_sent(server: Any) -> None:
    streaming = create_embeddings(inputs=["a"], stream=True)
    with AligneAI(api_key="k", base_url=server.base_url) as client:
        runner = client.runner
        with pytest.raises(aligneai.InvalidArgumentValueError, match=r"runner\.stream\(\)"):
            runner.request(streaming, CallOptions())
        with pytest.raises(aligneai.InvalidArgumentValueError, match=r"runner\.stream\(\)"):
            runner.raw(streaming, CallOptions())
        with pytest.raises(aligneai.InvalidArgumentValueError, match=r"runner.request\(\)"):
            runner.stream(list_models(), CallOptions())  # type: ignore[arg-type]
        with pytest.raises(aligneai.InvalidArgumentTypeError, match="operation"):
            runner.request("GET /models", CallOptions())  # type: ignore[arg-type]
    assert server.count == 0


def test_the_async_runner_refuses_the_wrong_kind_too(server: Any) -> None:
    async def main() -> None:
        async with AsyncAligneAI(api_key="k", base_url=server.base_url) as client:
            with pytest.raises(aligneai.InvalidArgumentValueError, match=r"runner\.stream\(\)"):
                await client.runner.request(
                    create_embeddings(inputs=["a"], stream=True), CallOptions()
                )
            with pytest.raises(aligneai.InvalidArgumentValueError, match=r"runner.raw\(\)"):
                await client.runner.stream(list_models(), CallOptions())  # type: ignore[arg-type]

    asyncio.run(main())
    assert server.count == 0
