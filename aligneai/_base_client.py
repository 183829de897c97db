"""What the sync and async clients share: settings, headers, copies and pickling.

Each client hands its resources a runner (`aligneai._runner`) built from the `CallPreparer`
kept here; the clients differ only in the runner's driver (`run_sync` or `run_async`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from aligneai.core.options import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    ClientOptions,
    Timeout,
    TimeoutLike,
    resolve_options,
)
from aligneai.core.request import base_headers, merge_headers
from aligneai.core.system import current_platform

from ._runner import CallPreparer

__all__ = ["DEFAULT_TIMEOUT", "BaseClient"]

_Client = TypeVar("_Client", bound="BaseClient")


class _Keep:
    """Marks an argument of ``with_options`` that was not given."""

    def __repr__(self) -> str:
        return "<keep>"


_KEEP: Any = _Keep()
_KEEP_DEFAULT: Any = _KEEP

logger = logging.getLogger("aligneai")

DEFAULT_TIMEOUT = Timeout()
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class BaseClient:
    """Settings and call preparation shared by `AligneAI` and `AsyncAligneAI`."""

    _options: ClientOptions
    _preparer: CallPreparer

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._set_options(
            resolve_options(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                default_headers=default_headers,
                max_response_bytes=max_response_bytes,
                environ=os.environ,
            )
        )

    def _set_options(self, options: ClientOptions) -> None:
        self._options = options
        # Built once per client (and per copy): every call's runner starts from it.
        self._preparer = CallPreparer(options, base_headers(options, current_platform()))
        _warn_if_plain_http(options.base_url)

    @property
    def base_url(self) -> str:
        """The API's base URL, e.g. ``https://api.aligne.ai/v1``."""
        return self._options.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeout of this client's calls."""
        return self._options.timeout

    @property
    def max_retries(self) -> int:
        """How many times a failed call is retried by default."""
        return self._options.max_retries

    def _derived_options(
        self,
        *,
        timeout: TimeoutLike | object,
        max_retries: int | object,
        default_headers: Mapping[str, str] | object,
    ) -> ClientOptions:
        changes: dict[str, Any] = {}
        if timeout is not _KEEP:
            changes["timeout"] = Timeout.coerce(timeout)  # type: ignore[arg-type]
        if max_retries is not _KEEP:
            changes["max_retries"] = max_retries
        if default_headers is not _KEEP:
            merged = dict(self._options.default_headers)
            merge_headers(merged, default_headers or {})  # type: ignore[arg-type]
            changes["default_headers"] = merged
        return self._options.replace(**changes)

    # -- copies, pickling --------------------------------------------------------------------

    _transport: Any
    _owns_transport: bool

    def _default_transport(self) -> Any:
        """Create the client's default transport (overridden by each client)."""
        raise NotImplementedError

    def with_options(
        self: _Client,
        *,
        timeout: TimeoutLike = _KEEP_DEFAULT,
        max_retries: int = _KEEP_DEFAULT,
        default_headers: Mapping[str, str] | None = _KEEP_DEFAULT,
    ) -> _Client:
        """A client with some settings changed that shares this one's connection pool.

        This client is left unchanged. Closing the copy does not close the shared pool;
        closing the original does.
        """
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._set_options(
            self._derived_options(
                timeout=timeout, max_retries=max_retries, default_headers=default_headers
            )
        )
        copy._owns_transport = False
        return copy

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._owns_transport:
            # Pools and sockets don't travel: the copy creates its own default transport.
            state["_transport"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._transport is None:
            self._transport = self._default_transport()

    def __repr__(self) -> str:
        # The API key never appears here.
        return f"{type(self).__name__}(base_url={self._options.base_url!r})"


def _warn_if_plain_http(base_url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if parts.scheme == "http" and (parts.hostname or "") not in _LOCAL_HOSTS:
        logger.warning(
            "base_url %s uses plain http:// to a host other than localhost: the API key "
            "travels unencrypted",
            base_url,
        )
