"""Dask: partitions embedded on a real LocalCluster (2 worker processes) against a rate limit."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
db = pytest.importorskip("dask.bag")
pytest.importorskip("distributed")

from aligneai.integrations import Embedder  # noqa: E402
from aligneai.integrations.dask import embed_bag, embed_dataframe  # noqa: E402
from aligneai.testing import LocalServer  # noqa: E402

from ._common import DIMS, KEY, allowed_requests, check_rows, corpus  # noqa: E402


def test_dataframe_every_row_once_with_its_vector_under_a_rate_limit(dask_client: Any) -> None:
    n, rpm = 400, 300
    texts = corpus(n)
    frame = pd.DataFrame({"text": texts, "n": np.arange(n)}, index=pd.RangeIndex(n))
    ddf = dd.from_pandas(frame, npartitions=8)
    with LocalServer(api_key=KEY, requests_per_minute=rpm, latency=0.02) as server:
        start = time.monotonic()
        out = embed_dataframe(
            ddf,
            base_url=server.url,
            dimensions=DIMS,
            requests_per_minute=rpm,
            workers=2,
            batch_size=5,
        ).compute()
        elapsed = time.monotonic() - start
        stats = server.stats
        worker_pids = dask_client.run(os.getpid)
    assert len(set(worker_pids.values())) == 2 and os.getpid() not in worker_pids.values()
    assert list(out.index) == list(range(n))  # nothing lost, nothing duplicated, in order
    assert out["text"].tolist() == texts and out["n"].tolist() == list(range(n))
    check_rows(texts, np.stack(out["embedding"].tolist()))
    assert stats.inputs == n and stats.accepted == n // 5
    assert stats.accepted <= allowed_requests(rpm, elapsed)
    assert stats.rate_limited <= stats.accepted // 4, stats


def test_map_partitions_with_an_embedder_instance(dask_client: Any) -> None:
    texts = corpus(50)
    ddf = dd.from_pandas(pd.DataFrame({"body": texts}), npartitions=3)
    with LocalServer(api_key=KEY) as server:
        embedder = Embedder(
            base_url=server.url, dimensions=DIMS, text_column="body", embedding_column="v"
        )
        meta = ddf._meta.assign(v=pd.Series([], dtype=object))
        out = ddf.map_partitions(embedder, meta=meta).compute()
    assert out["body"].tolist() == texts
    check_rows(texts, np.stack(out["v"].tolist()))


def test_bag_of_texts_to_vectors(dask_client: Any) -> None:
    texts = corpus(45)
    with LocalServer(api_key=KEY) as server:
        vectors = embed_bag(
            db.from_sequence(texts, npartitions=4), base_url=server.url, dimensions=DIMS
        ).compute()
    assert len(vectors) == 45
    check_rows(texts, np.stack(vectors))
