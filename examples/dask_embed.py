"""Embed a corpus with Dask: every partition embedded on a worker process, at a shared rate.

    pip install "aligneai[dask,parquet]"
    python examples/dask_embed.py                 # a local server with a rate limit, in-process
    ALIGNEAI_BASE_URL=... ALIGNEAI_API_KEY=... python examples/dask_embed.py   # a real server

Each worker process builds one client from its environment (the key never travels with the
tasks) and every task keeps to ``1 / WORKERS`` of the budgets.
"""

from __future__ import annotations

import os
import time

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from aligneai.integrations.dask import embed_dataframe

WORKERS = 2  # worker processes x threads per worker: the tasks that run at once
REQUESTS_PER_MINUTE = 600
TOKENS_PER_MINUTE = 200_000
DIMENSIONS = 64


def corpus(n: int) -> pd.DataFrame:
    topics = ("harbour cranes", "violin strings", "glacier ice", "tax forms", "sourdough bread")
    texts = [f"note {i} on {topics[i % 5]}, page {i // 5}" for i in range(n)]
    return pd.DataFrame({"text": texts}, index=pd.RangeIndex(n, name="id"))


def main() -> None:
    server = None
    if not os.environ.get("ALIGNEAI_BASE_URL"):
        from aligneai.testing import LocalServer

        server = LocalServer(requests_per_minute=REQUESTS_PER_MINUTE, latency=0.05).start()
        os.environ["ALIGNEAI_BASE_URL"] = server.url  # read by the workers, like the key
        os.environ.setdefault("ALIGNEAI_API_KEY", "local-demo-key")
    frame = corpus(2_000)
    # The worker processes start with this process's environment: set the variables first.
    with (
        LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        ddf = dd.from_pandas(frame, npartitions=8)
        lazy = embed_dataframe(
            ddf,
            dimensions=DIMENSIONS,
            requests_per_minute=REQUESTS_PER_MINUTE,
            tokens_per_minute=TOKENS_PER_MINUTE,
            workers=WORKERS,
            batch_size=32,  # texts per request
        )
        start = time.monotonic()
        out = lazy.compute()  # or lazy.to_parquet("vectors/") (needs pyarrow)
        elapsed = time.monotonic() - start
    if server is not None:
        server.stop()
    matrix = np.stack(out["embedding"].tolist())
    assert list(out.index) == list(frame.index)
    print(f"{len(out)} rows x {matrix.shape[1]} dimensions in {elapsed:.1f} s")
    print(f"  {len(out) / elapsed:.0f} rows/s with {WORKERS} workers")
    if server is not None:
        from aligneai.testing import embed as expected

        want = np.array([expected(text, DIMENSIONS) for text in frame["text"]], np.float32)
        assert np.array_equal(matrix, want)
        stats = server.stats
        print(f"  local server: {stats.accepted} requests, {stats.rate_limited} answered 429")
        print("  every row checked against the local server's deterministic embedder")


if __name__ == "__main__":
    main()
