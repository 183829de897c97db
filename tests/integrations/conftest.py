"""The engine and framework tests run only in their own env: ``tox -e integrations``.

Ray, Dask, pandas, LangChain and LlamaIndex are heavy and move fast, so the main suite (every
other tox env, ``make test``'s py3x runs) does not collect this folder at all, rather than
skipping tests in it; the integrations env opts in with ``ALIGNEAI_INTEGRATIONS=1`` and installs
``requirements/integrations.txt``. Run it by hand with
``ALIGNEAI_INTEGRATIONS=1 pytest tests/integrations`` in such an environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

collect_ignore_glob = [] if os.environ.get("ALIGNEAI_INTEGRATIONS") == "1" else ["test_*.py"]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A dask ``distributed.Client`` on a LocalCluster of 2 worker processes, one per module.

    Worker processes are spawned with the driver's environment: the API key comes from there.
    """
    distributed = pytest.importorskip("distributed")
    from ._common import KEY  # here, not at the top: the main suite loads this file too

    patch = pytest.MonkeyPatch()
    patch.setenv("ALIGNEAI_API_KEY", KEY)
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        patch.undo()
