"""`AsyncAligneAI`, the asyncio client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Callable

from aligneai.core.errors import InvalidArgumentTypeError
from aligneai.core.options import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    HeaderOverrides,
    TimeoutLike,
)
from aligneai.core.sentinels import NotGiven
from aligneai.transports.base import AsyncTransport
from aligneai.transports.connection_limits import DEFAULT_ASYNC_MAX_CONNECTIONS

from ._async_runner import AsyncRunner
from ._base_client import DEFAULT_TIMEOUT, BaseClient
from .resources.embeddings import AsyncEmbeddings
from .resources.models import AsyncModels

__all__ = ["AsyncAligneAI"]


class AsyncAligneAI(BaseClient):
    """The asyncio AligneAI client; the same arguments and behaviour as `AligneAI`.

    Args:
        transport: any `aligneai.transports.AsyncTransport`; by default an
            `AiohttpTransport` (needs ``pip install "aligneai[aiohttp]"``).
        max_connections: the default transport's limit of connections open at once
            (aiohttp's connector limit; default 100). With your own ``transport`` it does not
            apply: set the limit on that transport.

    The aiohttp session is created lazily inside the running loop, so a client may be created
    at module level and used from consecutive ``asyncio.run()`` calls.
    """

    # A class default for clients pickled before the argument existed.
    _max_connections: int = DEFAULT_ASYNC_MAX_CONNECTIONS

    def __init__(
        self,
        api_key: str | NotGiven | None = None,
        *,
        base_url: str | NotGiven | None = None,
        timeout: TimeoutLike | NotGiven = DEFAULT_TIMEOUT,
        max_retries: int | NotGiven = DEFAULT_MAX_RETRIES,
        default_headers: HeaderOverrides | NotGiven | None = None,
        transport: AsyncTransport | NotGiven | None = None,
        max_connections: int | NotGiven = DEFAULT_ASYNC_MAX_CONNECTIONS,
        max_response_bytes: int | NotGiven = DEFAULT_MAX_RESPONSE_BYTES,
        _sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            max_response_bytes=max_response_bytes,
        )
        if isinstance(transport, NotGiven):  # NOT_GIVEN: the default, as for every argument
            transport = None
        if isinstance(max_connections, NotGiven):
            max_connections = DEFAULT_ASYNC_MAX_CONNECTIONS
        if transport is not None and not isinstance(transport, AsyncTransport):
            raise InvalidArgumentTypeError(
                "transport", "expected an object with async send(request) and aclose() methods"
            )
        self._owns_transport = transport is None
        self._max_connections = max_connections
        self._transport: AsyncTransport = transport or self._default_transport()
        self._sleep = _sleep

    # Built on access rather than stored: see `AligneAI.embeddings`.
    @property
    def embeddings(self) -> AsyncEmbeddings:
        """Create embeddings."""
        return AsyncEmbeddings(self.runner)

    @property
    def models(self) -> AsyncModels:
        """List and look up models."""
        return AsyncModels(self.runner)

    @property
    def runner(self) -> AsyncRunner:
        """What this client's resources call the API through; see `AligneAI.runner`."""
        # Built per access, as in `AligneAI`: always this client's transport and settings.
        return AsyncRunner(self._preparer, self._transport, self._sleep)

    # -- lifecycle --------------------------------------------------------------------------

    def _default_transport(self) -> AsyncTransport:
        try:
            from aligneai.transports.aiohttp_transport import AiohttpTransport
        except ImportError as exc:
            from aligneai.core.errors import MissingDependencyError

            raise MissingDependencyError(
                "AsyncAligneAI needs aiohttp for its default transport: "
                'pip install "aligneai[aiohttp]"'
            ) from exc
        return AiohttpTransport(max_connections=self._max_connections)

    async def close(self) -> None:
        """Close the connection pool (if this client created it)."""
        if self._owns_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> AsyncAligneAI:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
