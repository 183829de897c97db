"""`AligneAI`, the synchronous client."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Callable

from aligneai.core.options import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    HeaderOverrides,
    TimeoutLike,
)
from aligneai.core.sentinels import NotGiven
from aligneai.transports.base import SyncTransport
from aligneai.transports.connection_limits import DEFAULT_SYNC_MAX_CONNECTIONS

from ._base_client import DEFAULT_TIMEOUT, BaseClient
from ._runner import SyncRunner
from .resources.embeddings import Embeddings
from .resources.models import Models

__all__ = ["AligneAI"]


class AligneAI(BaseClient):
    """The synchronous AligneAI client.

    Args:
        api_key: your API key; defaults to the ``ALIGNEAI_API_KEY`` environment variable.
        base_url: defaults to ``ALIGNEAI_BASE_URL``, then ``https://api.aligne.ai/v1``.
        timeout: seconds (read limit, connect limit at most 5 s), an `aligneai.Timeout`, or
            None for no read limit (connecting is still limited to 5 s). Default:
            ``Timeout(connect=5, read=60, total=None)``.
        max_retries: retries of a failed call (default 2); 0 disables retries.
        default_headers: extra headers sent with every call (a None value removes that header,
            the library's own included).
        transport: any `aligneai.transports.SyncTransport`; by default a `Urllib3Transport`.
        max_connections: the default transport's connections kept open per host (urllib3's
            pool size; default 10), as `AsyncAligneAI`'s bounds its aiohttp pool. With your
            own ``transport`` it does not apply: set the limit on that transport.
        max_response_bytes: the largest response body accepted (default 256 MiB).

    One client is safe to share between threads, survives ``os.fork()`` (the child gets a
    fresh connection pool) and pickles (the copy creates its own transport).
    """

    # A class default for clients pickled before the argument existed.
    _max_connections: int = DEFAULT_SYNC_MAX_CONNECTIONS

    def __init__(
        self,
        api_key: str | NotGiven | None = None,
        *,
        base_url: str | NotGiven | None = None,
        timeout: TimeoutLike | NotGiven = DEFAULT_TIMEOUT,
        max_retries: int | NotGiven = DEFAULT_MAX_RETRIES,
        default_headers: HeaderOverrides | NotGiven | None = None,
        transport: SyncTransport | NotGiven | None = None,
        max_connections: int | NotGiven = DEFAULT_SYNC_MAX_CONNECTIONS,
        max_response_bytes: int | NotGiven = DEFAULT_MAX_RESPONSE_BYTES,
        _sleep: Callable[[float], None] = time.sleep,
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
            max_connections = DEFAULT_SYNC_MAX_CONNECTIONS
        if transport is not None and not isinstance(transport, SyncTransport):
            from aligneai.core.errors import InvalidArgumentTypeError

            raise InvalidArgumentTypeError(
                "transport", "expected an object with send(request) and close() methods"
            )
        self._owns_transport = transport is None
        self._max_connections = max_connections
        self._transport: SyncTransport = transport or self._default_transport()
        self._sleep = _sleep

    # Built on access rather than stored: a stored resource would tie its runner to the
    # settings of the moment; and nothing built here refers back to the client, so a dropped
    # client (and its pool) is freed at once, not when the cycle collector runs.
    @property
    def embeddings(self) -> Embeddings:
        """Create embeddings."""
        return Embeddings(self.runner)

    @property
    def models(self) -> Models:
        """List and look up models."""
        return Models(self.runner)

    @property
    def runner(self) -> SyncRunner:
        """What this client's resources call the API through, with its settings and transport.

        ``runner.request(operation, call_options)`` performs an `aligneai.core` `Operation`
        (retries, timeouts, errors and parsing included) and returns its typed result;
        ``raw`` returns the `RawResponse`, ``stream`` a `Stream`. The way to call an endpoint
        this library has no method for yet.
        """
        # Built per access (a few hundred nanoseconds) rather than stored, so that it always
        # matches this client's current transport and settings (copies, unpickled clients).
        return SyncRunner(self._preparer, self._transport, self._sleep)

    # -- lifecycle --------------------------------------------------------------------------

    def _default_transport(self) -> SyncTransport:
        # Imported here so that a client with a custom transport never loads urllib3's pools.
        from aligneai.transports.urllib3_transport import Urllib3Transport

        return Urllib3Transport(max_connections=self._max_connections)

    def close(self) -> None:
        """Close the connection pool (if this client created it)."""
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> AligneAI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
