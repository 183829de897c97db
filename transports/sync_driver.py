"""The sync driver: performs the core request flow's actions with a `SyncTransport`.

This is the only place where the sync and async clients differ: one calls, the other awaits.
Everything they decide (retries, pacing, errors, logging) happens in `aligneai.core.flow`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Callable

from aligneai.core.body import BodyBuffer
from aligneai.core.failures import TransportError
from aligneai.core.flow import Flow, FlowResult, Outcome, ReadBody, Send, Sleep
from aligneai.core.headers import Headers
from aligneai.core.request import Request
from aligneai.core.response import ResponseHead, new_response_head

from ._guard import PASS_THROUGH, close_quietly, stray_failure
from .base import AsyncResponse, SyncResponse, SyncTransport

__all__ = ["Flow", "response_head", "run_sync"]


# Types of header mappings seen to have no itermerged() (aiohttp's CIMultiDictProxy, dict):
# remembered so that later heads skip the attribute miss and the Mapping ABC check.
_PLAIN_MAPPINGS: set[type] = set()


def response_head(response: SyncResponse | AsyncResponse) -> ResponseHead:
    """The core's view of a transport response's head."""
    headers = response.headers
    if type(headers) in _PLAIN_MAPPINGS:
        # ResponseHead's only converter is Headers(), which would return the fields as they are.
        return new_response_head(response.status_code, Headers.from_items(headers.items()))
    # urllib3's HTTPHeaderDict iterates its items in Python, a value list lookup per field;
    # its itermerged() reads its store directly, repeated fields already joined by ", " as
    # `Headers` joins them: half the cost of a small call's head.
    merged = getattr(headers, "itermerged", None)
    if merged is not None:
        fields = Headers.from_items(list(merged()))
    elif isinstance(headers, Mapping):
        # aiohttp's CIMultiDictProxy (or a dict): its items view, names in the server's case.
        _PLAIN_MAPPINGS.add(type(headers))
        fields = Headers.from_items(headers.items())
    else:  # anything else a transport may give: the generic path of the converter
        return ResponseHead(response.status_code, headers)
    return new_response_head(response.status_code, fields)


def run_sync(
    flow: Flow,
    transport: SyncTransport,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[FlowResult, SyncResponse | None]:
    """Run ``flow`` to its end; return its result and, for a stream, the open response."""
    response: SyncResponse | None = None
    request: Request | None = None
    try:
        action = next(flow)
        while True:
            outcome: Outcome
            try:
                if isinstance(action, Send):
                    request = action.request
                    if response is not None:
                        close_quietly(response)
                        response = None
                    response = transport.send(request)
                    outcome = response_head(response)
                elif isinstance(action, ReadBody):
                    assert response is not None, "ReadBody before Send"
                    buffer = BodyBuffer(action.max_bytes)
                    try:
                        for chunk in response.iter_bytes():
                            buffer.feed(chunk)
                    finally:
                        close_quietly(response)
                        response = None
                    outcome = buffer.getvalue()
                else:
                    assert isinstance(action, Sleep)
                    sleep(action.seconds)
                    outcome = None
            except TransportError as failure:
                outcome = failure
            except PASS_THROUGH:
                raise
            except Exception as exc:
                outcome = stray_failure(exc, request)
            try:
                action = flow.send(outcome)
            except StopIteration as stop:
                result: FlowResult = stop.value
                open_response, response = response, None
                return result, open_response
    finally:
        flow.close()
        if response is not None:
            close_quietly(response)
