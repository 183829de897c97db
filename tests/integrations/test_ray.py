"""Ray Data: ``map_batches(Embedder, ...)`` on a real local Ray (2 CPUs) against a rate limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from aligneai.integrations import Embedder  # noqa: E402
from aligneai.testing import LocalServer  # noqa: E402

from ._common import DIMS, KEY, allowed_requests, check_rows, corpus  # noqa: E402

# Ray warns about its own deprecated settings from inside ray.data, and older Rays leave a
# helper process of ray.init to the garbage collector (not our doing).
pytestmark = [
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),
    pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # The workers inherit the driver's environment at ray.init: that is where the key comes from.
    patch = pytest.MonkeyPatch()
    patch.setenv("ALIGNEAI_API_KEY", KEY)
    patch.setenv("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
        patch.undo()


def run(ds: Any, embedder_kwargs: dict[str, Any], **map_kwargs: Any) -> list[dict[str, Any]]:
    out = ds.map_batches(Embedder, fn_constructor_kwargs=embedder_kwargs, **map_kwargs)
    rows: list[dict[str, Any]] = out.take_all()
    return rows


def test_every_row_once_with_its_vector_under_a_rate_limit(local_ray: None) -> None:
    n, rpm = 400, 300
    texts = corpus(n)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    with LocalServer(api_key=KEY, requests_per_minute=rpm, latency=0.02) as server:
        start = time.monotonic()
        rows = run(
            ds,
            {
                "base_url": server.url,
                "dimensions": DIMS,
                "requests_per_minute": rpm,
                "workers": 2,
                "batch_size": 5,  # texts per request: 80 requests, the limit binds
            },
            concurrency=2,
            batch_size=50,
            batch_format="pyarrow",
        )
        elapsed = time.monotonic() - start
        stats = server.stats
    assert sorted(row["id"] for row in rows) == list(range(n))  # nothing lost or duplicated
    rows.sort(key=lambda row: row["id"])
    assert [row["text"] for row in rows] == texts
    check_rows(texts, np.stack([np.asarray(row["embedding"]) for row in rows]))
    assert stats.inputs == n  # every text embedded once: no batch sent twice
    assert stats.accepted == n // 5
    # The server's limit held (its own bucket), and the workers followed it: few 429s.
    assert stats.accepted <= allowed_requests(rpm, elapsed)
    assert stats.rate_limited <= stats.accepted // 4, stats


def test_numpy_and_pandas_batch_formats(local_ray: None) -> None:
    texts = corpus(60)
    ds = ray.data.from_items([{"text": t} for t in texts])
    with LocalServer(api_key=KEY) as server:
        for batch_format in ("numpy", "pandas"):
            rows = run(
                ds,
                {"base_url": server.url, "dimensions": DIMS},
                concurrency=1,
                batch_size=16,
                batch_format=batch_format,
            )
            got = {row["text"]: np.asarray(row["embedding"], dtype=np.float32) for row in rows}
            assert len(rows) == len(got) == 60
            check_rows(texts, np.stack([got[t] for t in texts]))
