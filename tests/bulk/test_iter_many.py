"""``embeddings.iter_many``: ordered chunks, bounded memory, skip, early stop (sync and async)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai import AligneAI, AsyncAligneAI  # noqa: E402
from aligneai.bulk import EmbeddedChunk  # noqa: E402
from aligneai.core.errors import InvalidArgumentValueError  # noqa: E402
from aligneai.testing import Fault, LocalServer  # noqa: E402

from ._helpers import DIMS, expected  # noqa: E402


def corpus(n: int) -> list[str]:
    return [f"line {i} of the corpus, topic {i % 11}" for i in range(n)]


def collect(server: LocalServer, driver: str, inputs: Any, **kwargs: Any) -> tuple[list[Any], Any]:
    """All chunks (and the iterator) from iter_many with the sync or the async client."""
    kwargs.setdefault("dimensions", DIMS)
    if driver == "sync":
        with AligneAI(api_key="k", base_url=server.url) as client:
            iterator = client.embeddings.iter_many(inputs, **kwargs)
            return list(iterator), iterator

    async def main() -> tuple[list[Any], Any]:
        async with AsyncAligneAI(api_key="k", base_url=server.url) as client:
            iterator = client.embeddings.iter_many(inputs, **kwargs)
            return [chunk async for chunk in iterator], iterator

    return asyncio.run(main())


drivers = pytest.mark.parametrize("driver", ["sync", "async"])


def check_in_order(
    chunks: list[EmbeddedChunk], texts: list[str], skipped: frozenset[int] = frozenset()
) -> None:
    position = 0
    for chunk in chunks:
        while position in skipped:
            position += 1
        assert chunk.offset == position, "chunks are in input order, without gaps"
        assert chunk.matrix.dtype == np.float32
        assert np.array_equal(chunk.matrix, expected(texts[chunk.offset : chunk.stop]))
        position = chunk.stop
    while position in skipped:
        position += 1
    assert position == len(texts)


@drivers
def test_chunks_come_in_order_with_every_row(driver: str) -> None:
    texts = corpus(250)
    with LocalServer(latency=0.002, latency_per_input=0.0005) as server:
        # Requests finish out of order (the latency grows with the batch; random faults).
        server.set_fault_rate(Fault.status(503, retry_after=0.01), 0.1, seed=3)
        chunks, iterator = collect(server, driver, iter(texts), batch_size=9, max_concurrency=6)
    check_in_order(chunks, texts)
    assert iterator.failed == ()
    assert iterator.requests >= 28


@drivers
def test_skip_leaves_failed_inputs_out(driver: str) -> None:
    texts = corpus(12)
    with LocalServer() as server:
        server.enqueue(Fault.status(422), Fault.status(422), Fault.status(422))
        chunks, iterator = collect(
            server, driver, texts, batch_size=4, max_concurrency=1, on_error="skip"
        )
    assert iterator.failed == (0,)
    check_in_order(chunks, texts, skipped=frozenset({0}))
    assert chunks[0].offset == 1


def test_memory_stays_bounded_by_the_window() -> None:
    texts = corpus(600)
    batch, concurrency = 5, 3
    with LocalServer(latency=0.001) as server, AligneAI(api_key="k", base_url=server.url) as client:
        # The first request is slow: every later answer must wait behind it.
        server.enqueue(Fault.delay(0.3))
        iterator = client.embeddings.iter_many(
            texts, dimensions=DIMS, batch_size=batch, max_concurrency=concurrency
        )
        job = iterator._job
        most = 0
        chunks = []
        sent_during_stall = None
        for chunk in iterator:
            if sent_during_stall is None:
                sent_during_stall = len(server.requests)
            held = sum(len(m) for m in job._held.values())
            most = max(most, held)
            chunks.append(chunk)
    check_in_order(chunks, texts)
    # While the first batch stalls, requests stop once the window (2 x batch x concurrency
    # inputs past the first unfinished one) is full, so the rows held back stay within it.
    assert sent_during_stall is not None
    assert sent_during_stall <= 2 * concurrency + 1
    assert most <= 2 * batch * concurrency


def test_breaking_out_stops_the_run() -> None:
    texts = corpus(2000)
    with LocalServer(latency=0.01) as server, AligneAI(api_key="k", base_url=server.url) as client:
        with client.embeddings.iter_many(
            texts, dimensions=DIMS, batch_size=10, max_concurrency=2
        ) as iterator:
            for chunk in iterator:
                if chunk.offset >= 30:
                    break
        sent = len(server.requests)
        # Nothing more is sent after the iterator is closed (requests already in flight may
        # still reach the server: at most max_concurrency of them).
        time.sleep(0.1)
        assert len(server.requests) <= sent + 2
    assert sent < 20


def test_async_breaking_out_stops_the_run() -> None:
    texts = corpus(2000)

    async def main(server: LocalServer) -> int:
        async with AsyncAligneAI(api_key="k", base_url=server.url) as client:
            async with client.embeddings.iter_many(
                texts, dimensions=DIMS, batch_size=10, max_concurrency=2
            ) as iterator:
                async for chunk in iterator:
                    if chunk.offset >= 30:
                        break
            sent = len(server.requests)
            await asyncio.sleep(0.1)
            assert len(server.requests) <= sent + 2
            return sent

    with LocalServer(latency=0.01) as server:
        assert asyncio.run(main(server)) < 20


@drivers
def test_arguments_are_checked_at_the_call(driver: str) -> None:
    with LocalServer() as server:
        if driver == "sync":
            with (
                AligneAI(api_key="k", base_url=server.url) as client,
                pytest.raises(InvalidArgumentValueError, match="batch_size"),
            ):
                client.embeddings.iter_many(corpus(3), batch_size=0)
        else:

            async def main() -> None:
                async with AsyncAligneAI(api_key="k", base_url=server.url) as client:
                    with pytest.raises(InvalidArgumentValueError, match="batch_size"):
                        client.embeddings.iter_many(corpus(3), batch_size=0)

            asyncio.run(main())
        assert server.requests == []
