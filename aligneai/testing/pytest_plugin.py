"""The AligneAI pytest plugin: a running local AligneAI server as a fixture.

Registered through the ``pytest11`` entry point, so installing ``aligneai`` makes the fixtures
available in every test suite (``-p no:aligneai`` turns it off)::

    def test_search(aligneai_server):
        aligneai_server.enqueue(StatusFault(503), NoFault())
        client = AligneAI(api_key="test", base_url=aligneai_server.url)
        ...

Because it loads in every pytest run of an environment where ``aligneai`` is installed, it is
cheap and has no side effects until used: importing it imports nothing of the testing kit
(no server module, no ``http.server``, no sockets, threads or files). The server module is
imported, and one server started on 127.0.0.1, only when a test first asks for
``aligneai_server`` or ``aligneai_server_url``; that server runs for the rest of the session
and is reset (faults, rate, request log, counters) before and after each test, so the fixture
costs nothing per test. It accepts any non-empty API key; build your own
`aligneai.testing.LocalServer(api_key=...)` to check a specific one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # annotations only: the server module is imported when a test needs it
    from aligneai.testing._server import LocalServer

__all__ = ["aligneai_server", "aligneai_server_url"]


@pytest.fixture(scope="session")
def _aligneai_session_server() -> Iterator[LocalServer]:
    from aligneai.testing._server import LocalServer

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
