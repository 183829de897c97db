"""Test against AligneAI without the network: a faithful local server with fault injection.

    from aligneai.testing import LocalServer, NoFault, StatusFault

    with LocalServer() as server:
        server.enqueue(StatusFault(503), NoFault())  # fail once, then answer
        client = AligneAI(api_key="test", base_url=server.url)

Each fault is a frozen value of its own class (`StatusFault`, `Delay`, `DropMidBody`, ...), all
subclasses of `Fault`; ``Fault.status(503)``, ``Fault.none()``... are kept as factories of the
same values. The pytest fixtures ``aligneai_server`` and ``aligneai_server_url`` are registered
automatically (see `aligneai.testing.pytest_plugin`); hypothesis strategies live in
``aligneai.testing.strategies``.

The names below are imported on first use (PEP 562), so that importing the package (which the
pytest plugin's import does in every pytest run) loads none of the kit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers; at runtime `__getattr__` loads them
    from aligneai.testing._api import count_tokens
    from aligneai.testing._embedder import cosine_similarity, embed
    from aligneai.testing._faults import (
        AnyFault,
        ContractViolation,
        Delay,
        DropBeforeHeaders,
        DropMidBody,
        Fault,
        FaultKind,
        HtmlFault,
        MalformedJson,
        NoFault,
        SlowBody,
        SseCutMidEvent,
        SseDrop,
        SseErrorEvent,
        SseShuffle,
        StallBody,
        StatusFault,
        TruncatedJson,
    )
    from aligneai.testing._server import LocalServer, RecordedRequest, ServerStats, serve

__all__ = [
    "AnyFault",
    "ContractViolation",
    "Delay",
    "DropBeforeHeaders",
    "DropMidBody",
    "Fault",
    "FaultKind",
    "HtmlFault",
    "LocalServer",
    "MalformedJson",
    "NoFault",
    "RecordedRequest",
    "ServerStats",
    "SlowBody",
    "SseCutMidEvent",
    "SseDrop",
    "SseErrorEvent",
    "SseShuffle",
    "StallBody",
    "StatusFault",
    "TruncatedJson",
    "cosine_similarity",
    "count_tokens",
    "embed",
    "serve",
]

_MODULES = {
    "count_tokens": "_api",
    "cosine_similarity": "_embedder",
    "embed": "_embedder",
    "LocalServer": "_server",
    "RecordedRequest": "_server",
    "ServerStats": "_server",
    "serve": "_server",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULES.get(name, '_faults')}")
    # Not cached in globals(): the module in sys.modules stays the one source of each name.
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
