"""Embed a corpus with Ray Data: ``map_batches(Embedder, ...)`` on every worker, at a shared rate.

    pip install "aligneai[ray,parquet]"
    python examples/ray_embed.py                 # a local server with a rate limit, in-process
    ALIGNEAI_BASE_URL=... ALIGNEAI_API_KEY=... python examples/ray_embed.py   # a real server

Each worker builds its own client from its environment (the key never travels with the task)
and keeps to ``1 / WORKERS`` of the budgets; the bulk scheduler in each one follows the
server's ``x-ratelimit-*`` headers and 429s for the rest.
"""

from __future__ import annotations

import os
import time

import numpy as np
import ray

from aligneai.integrations import Embedder

WORKERS = 2
REQUESTS_PER_MINUTE = 600
TOKENS_PER_MINUTE = 200_000
DIMENSIONS = 64


def corpus(n: int) -> list[dict[str, object]]:
    topics = ("harbour cranes", "violin strings", "glacier ice", "tax forms", "sourdough bread")
    return [{"id": i, "text": f"note {i} on {topics[i % 5]}, page {i // 5}"} for i in range(n)]


def embed(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    ds = ray.data.from_items(rows)
    out = ds.map_batches(
        Embedder,
        fn_constructor_kwargs={
            "dimensions": DIMENSIONS,
            "requests_per_minute": REQUESTS_PER_MINUTE,
            "tokens_per_minute": TOKENS_PER_MINUTE,
            "workers": WORKERS,  # each worker: a WORKERS-th of the budgets
            "batch_size": 32,  # texts per request
        },
        concurrency=WORKERS,  # WORKERS actors, each with one Embedder
        batch_size=256,  # rows handed to each call
        batch_format="pyarrow",
    )
    # out.write_parquet("vectors/") writes the same rows as files, one per block.
    embedded: list[dict[str, object]] = out.take_all()
    return embedded


def main() -> None:
    server = None
    if not os.environ.get("ALIGNEAI_BASE_URL"):
        from aligneai.testing import LocalServer

        server = LocalServer(requests_per_minute=REQUESTS_PER_MINUTE, latency=0.05).start()
        os.environ["ALIGNEAI_BASE_URL"] = server.url  # read by the workers, like the key
        os.environ.setdefault("ALIGNEAI_API_KEY", "local-demo-key")
    # The workers start with this process's environment: set the variables before ray.init.
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        rows = corpus(2_000)
        start = time.monotonic()
        embedded = embed(rows)
        elapsed = time.monotonic() - start
    finally:
        ray.shutdown()
        if server is not None:
            server.stop()
    embedded.sort(key=lambda row: int(row["id"]))  # type: ignore[call-overload]
    matrix = np.stack([np.asarray(row["embedding"], dtype=np.float32) for row in embedded])
    assert [row["id"] for row in embedded] == [row["id"] for row in rows]
    print(f"{len(embedded)} rows x {matrix.shape[1]} dimensions in {elapsed:.1f} s")
    print(f"  {len(embedded) / elapsed:.0f} rows/s with {WORKERS} workers")
    if server is not None:
        from aligneai.testing import embed as expected

        assert all(
            np.array_equal(matrix[i], np.float32(expected(str(row["text"]), DIMENSIONS)))
            for i, row in enumerate(embedded)
        )
        stats = server.stats
        print(f"  local server: {stats.accepted} requests, {stats.rate_limited} answered 429")
        print("  every row checked against the local server's deterministic embedder")


if __name__ == "__main__":
    main()
