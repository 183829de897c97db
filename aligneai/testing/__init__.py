"""Test against AligneAI without the network: a faithful local server with fault injection.

    from aligneai.testing import Fault, LocalServer

    with LocalServer() as server:
        server.enqueue(Fault.status(503), Fault.none())  # fail once, then answer
        client = AligneAI(api_key="test", base_url=server.url)

The pytest fixtures ``aligneai_server`` and ``aligneai_server_url`` are registered
automatically; hypothesis strategies live in ``aligneai.testing.strategies``.
"""

from aligneai.testing._contract import count_tokens
from aligneai.testing._embedder import cosine_similarity, embed
from aligneai.testing._faults import Fault, FaultKind
from aligneai.testing._server import LocalServer, RecordedRequest, ServerStats, serve

__all__ = [
    "Fault",
    "FaultKind",
    "LocalServer",
    "RecordedRequest",
    "ServerStats",
    "cosine_similarity",
    "count_tokens",
    "embed",
    "serve",
]
