"""The module-level client: ``aligneai.api_key = "..."`` then ``aligneai.embeddings.create()``.

The client is created on first use and re-created when ``aligneai.api_key``,
``aligneai.base_url`` or the ``ALIGNEAI_*`` environment variables it was built from change.
Application code should prefer an explicit ``AligneAI()`` instance.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from ._client import AligneAI

__all__ = ["module_client"]

_lock = threading.Lock()
_state: dict[str, Any] = {"key": None, "client": None}


def module_client() -> AligneAI:
    """The shared client for the module-level API, (re)built from the current settings."""
    package = sys.modules["aligneai"]
    api_key = getattr(package, "api_key", None)
    base_url = getattr(package, "base_url", None)
    settings = (
        api_key,
        base_url,
        os.environ.get("ALIGNEAI_API_KEY"),
        os.environ.get("ALIGNEAI_BASE_URL"),
    )
    with _lock:
        client = _state["client"]
        if client is None or _state["key"] != settings:
            new_client = AligneAI(api_key=api_key, base_url=base_url)
            if client is not None:
                client.close()
            _state["client"], _state["key"] = new_client, settings
            client = new_client
        return client  # type: ignore[no-any-return]
