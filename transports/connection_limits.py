"""The default connection limits of the two default transports, written once.

Both the transports and the clients' ``max_connections`` defaults use them; they live apart from
the transports so that a client can name them without importing urllib3, aiohttp or ssl.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ASYNC_MAX_CONNECTIONS", "DEFAULT_SYNC_MAX_CONNECTIONS"]

DEFAULT_SYNC_MAX_CONNECTIONS = 10
"""`Urllib3Transport` / `AligneAI`: connections kept open per host (urllib3's pool size)."""

DEFAULT_ASYNC_MAX_CONNECTIONS = 100
"""`AiohttpTransport` / `AsyncAligneAI`: connections open at once (aiohttp's connector limit)."""
