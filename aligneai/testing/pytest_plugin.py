"""The AligneAI pytest plugin: a running local AligneAI server as a fixture.

Registered through the ``pytest11`` entry point, so installing ``aligneai`` makes the fixtures
available in every test suite (``-p no:aligneai`` turns it off)::

    def test_search(aligneai_server):
        aligneai_server.enqueue(Fault.status(503), Fault.none())
        client = AligneAI(api_key="test", base_url=aligneai_server.url)
        ...

One server runs for the whole session and is reset (faults, rate, request log) before and
after each test, so the fixture costs nothing per test. It accepts any non-empty API key;
build your own `aligneai.testing.LocalServer(api_key=...)` to check a specific one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aligneai.testing._server import LocalServer

__all__ = ["aligneai_server", "aligneai_server_url"]


@pytest.fixture(scope="session")
def _aligneai_session_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture
def aligneai_server(_aligneai_session_server: LocalServer) -> Iterator[LocalServer]:
    """Yield the running `aligneai.testing.LocalServer`, reset for this test."""
    server = _aligneai_session_server
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def aligneai_server_url(aligneai_server: LocalServer) -> str:
    """Return the base URL (``http://127.0.0.1:<port>/v1``) of `aligneai_server`."""
    return aligneai_server.url
