"""Helpers shared by the bulk tests: a run of ``create_many`` through either client, the rows
the local server answers.

The test modules import this after their ``pytest.importorskip("numpy")`` / ``("aiohttp")``
lines, so those skips still come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from aligneai import AligneAI, AsyncAligneAI
from aligneai.bulk import BulkResult
from aligneai.testing import LocalServer, embed

DIMS = 8


def expected(texts: Iterable[str], dims: int = DIMS) -> Any:
    """The deterministic embedder's rows for ``texts``: an independent model of the server."""
    return np.array([embed(text, dims) for text in texts], dtype=np.float32)


def create_many(
    server: LocalServer | str,
    driver: str,
    inputs: Any,
    *,
    client_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> BulkResult:
    """``create_many(inputs, **kwargs)`` with the sync or the async client (``driver``).

    ``server`` is a `LocalServer` or the base URL of another one (pytest-httpserver's);
    ``client_options`` go to the client's constructor. ``dimensions`` defaults to `DIMS`.
    """
    url = server if isinstance(server, str) else server.url
    options = dict(client_options or {})
    kwargs.setdefault("dimensions", DIMS)
    if driver == "sync":
        with AligneAI(api_key="k", base_url=url, **options) as client:
            result: BulkResult = client.embeddings.create_many(inputs, **kwargs)
            return result

    async def main() -> BulkResult:
        async with AsyncAligneAI(api_key="k", base_url=url, **options) as client:
            result: BulkResult = await client.embeddings.create_many(inputs, **kwargs)
            return result

    return asyncio.run(main())
