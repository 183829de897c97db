"""What the sync and async clients share: settings, headers, copies and pickling.

Each client hands its resources a runner (`aligneai._runner`) built from the `CallPreparer`
kept here; the clients differ only in the runner's driver (`run_sync` or `run_async`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, TypeVar

from aligneai.core.errors import InvalidArgumentTypeError
from aligneai.core.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_READ_TIMEOUT,
    ClientOptions,
    HeaderOverrides,
    Timeout,
    TimeoutLike,
    resolve_options,
    validate_header_overrides,
)
from aligneai.core.request import base_headers
from aligneai.core.sentinels import NOT_GIVEN, NotGiven
from aligneai.core.system import current_platform

from ._runner import CallPreparer

__all__ = ["DEFAULT_TIMEOUT", "BaseClient"]

_Client = TypeVar("_Client", bound="BaseClient")

logger = logging.getLogger("aligneai")

# Every field written: passed per call or to with_options, it restores all three defaults.
DEFAULT_TIMEOUT = Timeout(connect=DEFAULT_CONNECT_TIMEOUT, read=DEFAULT_READ_TIMEOUT, total=None)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class BaseClient:
    """Settings and call preparation shared by `AligneAI` and `AsyncAligneAI`."""

    _options: ClientOptions
    _preparer: CallPreparer

    def __init__(
        self,
        api_key: str | NotGiven | None = None,
        *,
        base_url: str | NotGiven | None = None,
        timeout: TimeoutLike | NotGiven = DEFAULT_TIMEOUT,
        max_retries: int | NotGiven = DEFAULT_MAX_RETRIES,
        default_headers: HeaderOverrides | NotGiven | None = None,
        max_response_bytes: int | NotGiven = DEFAULT_MAX_RESPONSE_BYTES,
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
        timeout: TimeoutLike | NotGiven,
        max_retries: int | NotGiven,
        default_headers: HeaderOverrides | NotGiven,
    ) -> ClientOptions:
        changes: dict[str, Any] = {}
        if timeout is not NOT_GIVEN:
            changes["timeout"] = self._options.timeout.merge(timeout)
        if max_retries is not NOT_GIVEN:
            changes["max_retries"] = max_retries  # validated by ClientOptions
        if default_headers is not NOT_GIVEN:
            if default_headers is None:
                # It used to keep the headers; "no default headers" would be as plausible.
                raise InvalidArgumentTypeError(
                    "default_headers",
                    "expected a mapping, got None; omit the argument (or pass NOT_GIVEN) to "
                    "keep the client's default headers, or map a name to None to remove it",
                )
            extra = validate_header_overrides(default_headers, "default_headers")
            # Names in lower case, so a later spelling replaces an earlier one; a None value
            # stays, to remove the field (maybe one of the library's own) from each request.
            merged = {name.lower(): value for name, value in self._options.default_headers.items()}
            merged.update((name.lower(), value) for name, value in extra.items())
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
        timeout: TimeoutLike | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        default_headers: HeaderOverrides | NotGiven = NOT_GIVEN,
    ) -> _Client:
        """A client with some settings changed that shares this one's connection pool.

        Args:
            timeout: applied over this client's timeout, field by field (`Timeout.merge`): a
                number sets the read limit (capping connect) and keeps the ``total`` deadline;
                None removes the read limit only; a `Timeout` replaces the fields written in
                it (``Timeout(total=None)`` drops the deadline).
            max_retries: the copy's retry count.
            default_headers: merged over this client's default headers, whatever the case of
                the names; a None value removes that field from the copy's requests (the
                library's own headers too, e.g. ``{"X-AligneAI-OS": None}``). None itself is
                refused: it is unclear whether it would keep or clear the headers.

        An argument left out (`NOT_GIVEN`) keeps this client's setting. This client is left
        unchanged. Closing the copy does not close the shared pool; closing the original does.
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
