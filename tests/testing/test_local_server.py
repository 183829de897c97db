"""The local AligneAI server, over real sockets: the wire contract, the faults, the lifecycle.

Only the standard library talks to it here (http.client, urllib.request, raw sockets): the
server is what the client's own tests stand on, so it is checked without the client.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import pytest

from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.testing import (
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
from aligneai.testing._server import LocalServer, RecordedRequest

KEY = "sk-test"
REQUEST_ID = re.compile(r"^req_[0-9a-f]{8,}$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture
def server(shared_server: LocalServer) -> Iterator[LocalServer]:
    shared_server.reset()
    yield shared_server
    shared_server.reset()


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    server: LocalServer,
    method: str,
    path: str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = KEY,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        body = raw if raw is not None else None if payload is None else json.dumps(payload)
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def embed(server: LocalServer, payload: Any, **kwargs: Any) -> Reply:
    return call(server, "POST", "/v1/embeddings", payload, **kwargs)


def assert_error(
    reply: Reply, status: int, code: str | None, param: str | None = None
) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(reply.headers["x-request-id"])
    body = reply.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ERROR_TYPES[status]
    assert error["code"] == code
    assert error["param"] == param
    return dict(error)


def raw_request(
    server: LocalServer,
    method: str,
    path: str,
    payload: Any = None,
    *,
    version: str = "HTTP/1.1",
    close: bool = True,
    extra: str = "",
) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    head = f"{method} {path} {version}\r\nHost: 127.0.0.1:{server.port}\r\n"
    head += f"Authorization: Bearer {KEY}\r\n"
    if payload is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + extra + "\r\n").encode() + body


# The longest any wait of these tests may take, in total (each socket read has its own
# timeout as well): far more than a loaded machine needs, and never forever.
WAIT_LIMIT = 20.0


def wait_until(condition: Callable[[], object], what: str, limit: float = WAIT_LIMIT) -> None:
    """Poll ``condition`` until it is true; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {limit} s for {what}")
        time.sleep(0.01)


def exchange(server: LocalServer, request: bytes, *, timeout: float = 10) -> tuple[bytes, str]:
    """Send raw bytes; read until the server closes. Returns (bytes, "eof" | "reset")."""
    deadline = time.monotonic() + WAIT_LIMIT
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = bytearray()
        while True:
            assert time.monotonic() < deadline, "the server kept the connection open"
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return bytes(received), "reset"
            if not data:
                return bytes(received), "eof"
            received += data


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body; the flag says whether the terminating chunk arrived."""
    payload = bytearray()
    while True:
        line_end = body.find(b"\r\n")
        if line_end < 0:
            return bytes(payload), False
        size = int(body[:line_end], 16)
        if size == 0:
            return bytes(payload), body[line_end:] == b"\r\n\r\n"
        chunk = body[line_end + 2 : line_end + 2 + size]
        payload += chunk
        if len(chunk) < size or body[line_end + 2 + size : line_end + 4 + size] != b"\r\n":
            return bytes(payload), False
        body = body[line_end + 4 + size :]


def parse_events(text: str) -> tuple[list[tuple[str, Any]], str]:
    """Split an event stream into complete (event, data) pairs and the unfinished rest."""
    *blocks, rest = text.split("\n\n")
    events = []
    for block in blocks:
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events, rest


def stream(server: LocalServer, payload: dict[str, Any]) -> tuple[dict[str, str], bytes, bool]:
    raw, _ = exchange(server, raw_request(server, "POST", "/v1/embeddings", payload))
    status, headers, body = split_response(raw)
    assert status == 200
    decoded, terminated = dechunk(body)
    return headers, decoded, terminated


# -- endpoints ----------------------------------------------------------------------------


def test_url(server: LocalServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    assert server.api_key is None


def test_list_models(server: LocalServer) -> None:
    reply = call(server, "GET", "/v1/models")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "object": "list",
        "data": [
            {
                "id": "aligne-embed-small",
                "object": "model",
                "created": 1704067200,
                "owned_by": "aligneai",
                "dimensions": 384,
            },
            {
                "id": "aligne-embed-large",
                "object": "model",
                "created": 1704067200,
                "owned_by": "aligneai",
                "dimensions": 1536,
            },
        ],
    }


@pytest.mark.parametrize(
    ("model", "dims"), [("aligne-embed-small", 384), ("aligne-embed-large", 1536)]
)
def test_get_model(server: LocalServer, model: str, dims: int) -> None:
    reply = call(server, "GET", f"/v1/models/{model}")
    assert reply.status == 200
    body = reply.json()
    assert body["id"] == model and body["object"] == "model" and body["dimensions"] == dims


def test_unknown_model_is_404(server: LocalServer) -> None:
    assert_error(call(server, "GET", "/v1/models/nope"), 404, "model_not_found")


def test_embeddings_default_model(server: LocalServer) -> None:
    reply = embed(server, {"inputs": ["Hello, world!", "coffee"]})
    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == "aligne-embed-small"
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [item["index"] for item in body["data"]] == [0, 1]
    for item in body["data"]:
        assert set(item) == {"object", "index", "embedding"}
        assert item["object"] == "embedding"
        assert len(item["embedding"]) == 384
        assert abs(sum(x * x for x in item["embedding"]) - 1) < 1e-5


def test_embeddings_string_input_large_model_and_dimensions(server: LocalServer) -> None:
    single = embed(server, {"inputs": "coffee", "model": "aligne-embed-large"}).json()
    assert len(single["data"]) == 1 and len(single["data"][0]["embedding"]) == 1536
    assert single["model"] == "aligne-embed-large"
    short = embed(server, {"inputs": ["coffee"], "dimensions": 64}).json()
    assert len(short["data"][0]["embedding"]) == 64
    full = embed(server, {"inputs": ["coffee"], "model": "aligne-embed-large", "dimensions": 1536})
    assert full.status == 200


def test_embeddings_are_deterministic_and_meaningful(server: LocalServer) -> None:
    inputs = ["robust coffee blend", "a robust blend of coffee", "beach vacation in July"]
    first = embed(server, {"inputs": inputs}).json()
    second = embed(server, {"inputs": inputs}).json()
    assert first == second
    a, b, c = (item["embedding"] for item in first["data"])
    assert sum(x * y for x, y in zip(a, b)) > sum(x * y for x, y in zip(a, c))


def test_base64_equals_float(server: LocalServer) -> None:
    inputs = ["The new coffee blend", "beach vacation", "x"]
    floats = embed(server, {"inputs": inputs, "encoding_format": "float"}).json()
    packed = embed(server, {"inputs": inputs, "encoding_format": "base64"}).json()
    assert packed["usage"] == floats["usage"]
    for f_item, b_item in zip(floats["data"], packed["data"]):
        raw = base64.b64decode(b_item["embedding"], validate=True)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == f_item["embedding"]


def test_2048_inputs_are_accepted(server: LocalServer) -> None:
    reply = embed(server, {"inputs": [f"text {i}" for i in range(2048)], "dimensions": 8})
    assert reply.status == 200
    assert [item["index"] for item in reply.json()["data"]] == list(range(2048))


def test_x_request_id_on_every_answer(server: LocalServer) -> None:
    server.enqueue(Fault.status(500))
    replies = [
        call(server, "GET", "/v1/models"),
        call(server, "GET", "/v1/models"),
        call(server, "GET", "/v1/nope"),
        call(server, "GET", "/v1/models", key=None),
    ]
    ids = [reply.headers["x-request-id"] for reply in replies]
    assert all(REQUEST_ID.match(rid) for rid in ids)
    assert len(set(ids)) == len(ids)
    headers, _, _ = stream(server, {"inputs": "a", "stream": True})
    assert REQUEST_ID.match(headers["x-request-id"])


def test_keep_alive_two_requests_on_one_connection(server: LocalServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        auth = {"Authorization": f"Bearer {KEY}"}
        conn.request("GET", "/v1/models", headers=auth)
        first = conn.getresponse()
        first.read()
        sock, local = conn.sock, conn.sock.getsockname()
        body = json.dumps({"inputs": "hi", "stream": True})
        conn.request("POST", "/v1/embeddings", body=body, headers=auth)  # chunked answer
        second = conn.getresponse()
        second.read()
        conn.request("POST", "/v1/embeddings", body="{bad", headers=auth)  # error answer
        third = conn.getresponse()
        third.read()
        assert (first.status, second.status, third.status) == (200, 200, 400)
        assert conn.sock is sock and conn.sock.getsockname() == local
        assert not first.will_close and not second.will_close and not third.will_close
    finally:
        conn.close()


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b'{"inputs": NaN}', "invalid_json", None),
        (b"\xff\xfe", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[1, 2]", "invalid_type", None),
        (b'{"model": "aligne-embed-small"}', "missing_required_parameter", "inputs"),
        (b'{"inputs": 5}', "invalid_type", "inputs"),
        (b'{"inputs": ["a", 3]}', "invalid_type", "inputs"),
        (b'{"inputs": null}', "invalid_type", "inputs"),
        (b'{"inputs": "a", "foo": 1}', "unknown_parameter", "foo"),
        (b'{"inputs": "a", "model": null}', "invalid_type", "model"),
        (b'{"inputs": "a", "model": 7}', "invalid_type", "model"),
        (b'{"inputs": "a", "encoding_format": "int8"}', "invalid_value", "encoding_format"),
        (b'{"inputs": "a", "encoding_format": 1}', "invalid_type", "encoding_format"),
        (b'{"inputs": "a", "dimensions": true}', "invalid_type", "dimensions"),
        (b'{"inputs": "a", "dimensions": 2.5}', "invalid_type", "dimensions"),
        (b'{"inputs": "a", "dimensions": "8"}', "invalid_type", "dimensions"),
        (b'{"inputs": "a", "dimensions": 0}', "invalid_value", "dimensions"),
        (b'{"inputs": "a", "dimensions": -3}', "invalid_value", "dimensions"),
        (b'{"inputs": "a", "stream": "yes"}', "invalid_type", "stream"),
    ],
)
def test_malformed_requests_are_400(
    server: LocalServer, raw: bytes, code: str, param: str | None
) -> None:
    assert_error(embed(server, None, raw=raw), 400, code, param)


@pytest.mark.parametrize(
    ("payload", "code", "param"),
    [
        ({"inputs": []}, "empty_inputs", "inputs"),
        ({"inputs": ["a"] * 2049}, "too_many_inputs", "inputs"),
        ({"inputs": ["a", ""]}, "empty_input", "inputs"),
        ({"inputs": ""}, "empty_input", "inputs"),
        ({"inputs": "a", "dimensions": 385}, "dimensions_too_large", "dimensions"),
        (
            {"inputs": "a", "model": "aligne-embed-large", "dimensions": 1537},
            "dimensions_too_large",
            "dimensions",
        ),
    ],
)
def test_unprocessable_requests_are_422(
    server: LocalServer, payload: dict[str, Any], code: str, param: str
) -> None:
    assert_error(embed(server, payload), 422, code, param)


def test_unknown_model_in_embeddings_is_404(server: LocalServer) -> None:
    assert_error(embed(server, {"inputs": "a", "model": "gpt"}), 404, "model_not_found", "model")


@pytest.mark.parametrize("path", ["/v1/nope", "/v2/models", "/v1/models/", "/v1/models/a/b", "/"])
def test_unknown_path_is_404(server: LocalServer, path: str) -> None:
    assert_error(call(server, "GET", path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/embeddings", "POST"),
        ("PUT", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/v1/models/aligne-embed-small", "GET"),
    ],
)
def test_wrong_method_is_405(server: LocalServer, method: str, path: str, allow: str) -> None:
    reply = call(server, method, path)
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == allow


def test_head_is_405_without_a_body(server: LocalServer) -> None:
    reply = call(server, "HEAD", "/v1/models")
    assert reply.status == 405 and reply.body == b""
    assert int(reply.headers["content-length"]) > 0


def test_integral_float_dimensions_are_an_integer(server: LocalServer) -> None:
    # JSON has one number type: 2.0 is the integer 2 (as the OpenAPI schema's "integer" says).
    reply = embed(server, {"inputs": "a", "dimensions": 2.0})
    assert reply.status == 200
    assert len(reply.json()["data"][0]["embedding"]) == 2


def test_unsupported_method_gets_a_json_error(server: LocalServer) -> None:
    # Any method on a known path is a 405 naming the allowed ones, as for POST on /models.
    request = b"BREW /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw, _ = exchange(server, request)
    status, headers, body = split_response(raw)
    assert status == 405 and headers["content-type"] == "application/json"
    assert headers["allow"] == "GET"
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer"}, "missing_api_key"),
        ({"Authorization": "Bearer   "}, "missing_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
        ({"Authorization": "sk-test"}, "missing_api_key"),
    ],
)
def test_missing_key_is_401(server: LocalServer, headers: dict[str, str], code: str) -> None:
    reply = embed(server, {"inputs": "a"}, headers=headers, key=None)
    assert_error(reply, 401, code)
    assert reply.headers["www-authenticate"] == "Bearer"


def test_any_key_is_accepted_by_default(server: LocalServer) -> None:
    assert call(server, "GET", "/v1/models", key="whatever").status == 200
    assert call(server, "GET", "/v1/models", headers={"Authorization": "bearer k"}).status == 200


def test_a_configured_key_is_required() -> None:
    with LocalServer(api_key="sk-right") as server:
        assert server.api_key == "sk-right"
        assert call(server, "GET", "/v1/models", key="sk-right").status == 200
        assert_error(call(server, "GET", "/v1/models", key="sk-wrong"), 401, "invalid_api_key")
        assert_error(call(server, "GET", "/v1/models", key=None), 401, "missing_api_key")


def test_body_limit_is_413() -> None:
    with LocalServer(max_body_bytes=1000) as server:
        request = urllib.request.Request(
            server.url + "/embeddings",
            data=json.dumps({"inputs": "x" * 5000}).encode(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 413
        assert json.loads(info.value.read())["error"]["code"] == "request_too_large"
        assert embed(server, {"inputs": "small"}).status == 200


def test_bad_content_length_is_400(server: LocalServer) -> None:
    request = raw_request(server, "POST", "/v1/embeddings", extra="Content-Length: nope\r\n")
    status, _, body = split_response(exchange(server, request)[0])
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_framing"


def test_chunked_request_body(server: LocalServer) -> None:
    payload = json.dumps({"inputs": ["chunked upload"]}).encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    request = raw_request(server, "POST", "/v1/embeddings", extra="Transfer-Encoding: chunked\r\n")
    status, _, answer = split_response(exchange(server, request + body)[0])
    assert status == 200 and json.loads(answer)["usage"]["prompt_tokens"] == 2


# -- streaming ----------------------------------------------------------------------------


def test_stream_framing(server: LocalServer) -> None:
    inputs = ["first text", "second text", "third"]
    headers, decoded, terminated = stream(server, {"inputs": inputs, "stream": True})
    assert headers["content-type"] == "text/event-stream"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert terminated
    events, rest = parse_events(decoded.decode())
    assert rest == ""
    assert [name for name, _ in events] == ["embedding"] * 3 + ["done"]
    plain = embed(server, {"inputs": inputs}).json()
    assert [data for _, data in events[:3]] == plain["data"]
    assert events[3][1] == {"object": "list", "model": plain["model"], "usage": plain["usage"]}


def test_stream_base64_and_chunk_per_event(server: LocalServer) -> None:
    raw, _ = exchange(
        server,
        raw_request(
            server,
            "POST",
            "/v1/embeddings",
            {"inputs": ["a", "b"], "stream": True, "encoding_format": "base64"},
        ),
    )
    _, _, body = split_response(raw)
    # One chunk per event: every chunk holds exactly one "event:" block.
    chunks = re.findall(rb"[0-9a-f]+\r\n(.*?)\r\n", body, flags=re.S)
    assert [chunk.count(b"event: ") for chunk in chunks if chunk] == [1, 1, 1]
    events, _ = parse_events(dechunk(body)[0].decode())
    assert isinstance(events[0][1]["embedding"], str)


def test_stream_over_http_1_0_is_unframed(server: LocalServer) -> None:
    payload = {"inputs": ["a", "b"], "stream": True}
    raw, how = exchange(
        server, raw_request(server, "POST", "/v1/embeddings", payload, version="HTTP/1.0")
    )
    status, headers, body = split_response(raw)
    assert (status, how) == (200, "eof") and "transfer-encoding" not in headers
    events, rest = parse_events(body.decode())
    assert [name for name, _ in events] == ["embedding", "embedding", "done"] and rest == ""


def test_invalid_stream_request_is_a_json_error(server: LocalServer) -> None:
    assert_error(embed(server, {"inputs": [], "stream": True}), 422, "empty_inputs", "inputs")


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "too_many_requests"), (500, "internal_server_error"), (503, "service_unavailable")],
)
def test_status_fault_default_body(server: LocalServer, status: int, code: str) -> None:
    server.enqueue(Fault.status(status))
    assert_error(embed(server, {"inputs": "a"}), status, code)
    assert embed(server, {"inputs": "a"}).status == 200


def test_status_fault_headers_and_bodies(server: LocalServer) -> None:
    server.enqueue(
        Fault.status(
            429,
            headers={"X-Custom": "1"},
            retry_after=2,
            retry_after_ms=1500,
            should_retry=False,
        ),
        Fault.status(500, body="plain text", content_type="text/plain", retry_after=0.5),
        Fault.status(400, body={"error": {"message": "custom"}}),
        Fault.status(200, body=b'{"object": "list", "data": []}'),
        Fault.status(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", should_retry=True),
    )
    first = call(server, "GET", "/v1/models")
    assert first.status == 429
    assert first.headers["x-custom"] == "1"
    assert first.headers["retry-after"] == "2"
    assert first.headers["retry-after-ms"] == "1500"
    assert first.headers["x-should-retry"] == "false"
    second = call(server, "GET", "/v1/models")
    assert (second.status, second.body, second.headers["content-type"]) == (
        500,
        b"plain text",
        "text/plain",
    )
    assert second.headers["retry-after"] == "0.5"
    third = call(server, "GET", "/v1/models")
    assert third.status == 400 and third.json() == {"error": {"message": "custom"}}
    fourth = call(server, "GET", "/v1/models")
    assert fourth.status == 200 and fourth.json() == {"object": "list", "data": []}
    fifth = call(server, "GET", "/v1/models")
    assert fifth.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert fifth.headers["x-should-retry"] == "true"
    assert REQUEST_ID.match(fifth.headers["x-request-id"])


def test_status_fault_answers_even_unauthenticated_requests(server: LocalServer) -> None:
    server.enqueue(Fault.status(503))
    assert call(server, "GET", "/v1/models", key=None).status == 503


def test_html_fault(server: LocalServer) -> None:
    server.enqueue(Fault.html(), Fault.html(504, headers={"Via": "proxy"}))
    first = call(server, "GET", "/v1/models")
    assert first.status == 502 and first.headers["content-type"] == "text/html"
    assert b"<h1>502 Bad Gateway</h1>" in first.body
    second = call(server, "GET", "/v1/models")
    assert second.status == 504 and second.headers["via"] == "proxy"
    assert b"504 Gateway Timeout" in second.body


def test_with_headers_applies_to_any_answer(server: LocalServer) -> None:
    server.enqueue(Fault.delay(0).with_headers({"X-A": "1"}, retry_after_ms=10))
    reply = call(server, "GET", "/v1/models")
    assert reply.status == 200 and reply.headers["x-a"] == "1"
    assert reply.headers["retry-after-ms"] == "10"


def test_delay(server: LocalServer) -> None:
    server.enqueue(Fault.delay(0.3))
    started = time.monotonic()
    reply = embed(server, {"inputs": "a"})
    assert time.monotonic() - started >= 0.3
    assert reply.status == 200 and len(reply.json()["data"]) == 1


def test_slow_body(server: LocalServer) -> None:
    expected = embed(server, {"inputs": "slow"}).body
    server.enqueue(Fault.slow_body(0.05, chunks=4))
    started = time.monotonic()
    reply = embed(server, {"inputs": "slow"})
    assert time.monotonic() - started >= 0.15
    assert reply.status == 200 and reply.body == expected


def test_slow_stream(server: LocalServer) -> None:
    server.enqueue(Fault.slow_body(0.05))
    started = time.monotonic()
    _, decoded, terminated = stream(server, {"inputs": ["a", "b"], "stream": True})
    assert time.monotonic() - started >= 0.1
    assert terminated and len(parse_events(decoded.decode())[0]) == 3


def read_head_and_some_body(sock: socket.socket, body_bytes: int) -> tuple[dict[str, str], bytes]:
    received = b""
    deadline = time.monotonic() + WAIT_LIMIT
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < body_bytes:
        assert time.monotonic() < deadline, f"{len(received)} bytes in {WAIT_LIMIT} s"
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        received += data
    _, headers, body = split_response(received)
    return headers, body


def test_stall_body_sends_half_then_nothing(server: LocalServer) -> None:
    full = embed(server, {"inputs": "stall"}).body
    server.enqueue(Fault.stall_body(60))  # woken by the module's server stop at the latest
    request = raw_request(server, "POST", "/v1/embeddings", {"inputs": "stall"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        headers, body = read_head_and_some_body(sock, len(full) // 2)
        assert int(headers["content-length"]) == len(full)
        assert body == full[: len(full) // 2]
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(65536)


def test_short_stall_then_the_rest(server: LocalServer) -> None:
    full = embed(server, {"inputs": "stall"}).body
    server.enqueue(Fault.stall_body(0.1), Fault.stall_body(0.1))
    assert embed(server, {"inputs": "stall"}).body == full
    _, decoded, terminated = stream(server, {"inputs": ["a", "b", "c"], "stream": True})
    assert terminated and len(parse_events(decoded.decode())[0]) == 4


def test_drop_before_headers(server: LocalServer) -> None:
    server.enqueue(Fault.drop_before_headers())
    raw, _ = exchange(server, raw_request(server, "POST", "/v1/embeddings", {"inputs": "a"}))
    assert raw == b""
    server.enqueue(Fault.drop_before_headers())
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(server, "GET", "/v1/models")
    assert len(server.requests) == 2  # the requests were read before the drop


def test_drop_mid_body(server: LocalServer) -> None:
    server.enqueue(Fault.drop_mid_body())
    request = raw_request(server, "POST", "/v1/embeddings", {"inputs": "a"}, close=False)
    raw, _ = exchange(server, request)
    status, headers, body = split_response(raw)
    length = int(headers["content-length"])
    assert status == 200 and 0 < len(body) < length
    server.enqueue(Fault.drop_mid_body())
    with pytest.raises(http.client.IncompleteRead):
        embed(server, {"inputs": "a"})


def test_drop_mid_stream(server: LocalServer) -> None:
    server.enqueue(Fault.drop_mid_body())
    request = raw_request(server, "POST", "/v1/embeddings", {"inputs": ["a", "b"], "stream": True})
    status, _, body = split_response(exchange(server, request)[0])
    decoded, terminated = dechunk(body)
    assert status == 200 and not terminated
    assert "event: done" not in decoded.decode()


def test_malformed_json(server: LocalServer) -> None:
    server.enqueue(Fault.malformed_json())
    reply = embed(server, {"inputs": "a"})
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(reply.body)
    with pytest.raises(ValueError):
        reply.json()


def test_truncated_json(server: LocalServer) -> None:
    full = embed(server, {"inputs": ["a", "b"]}).body
    server.enqueue(Fault.truncated_json())
    reply = embed(server, {"inputs": ["a", "b"]})
    assert reply.status == 200 and int(reply.headers["content-length"]) == len(reply.body)
    assert reply.body == full[: len(full) // 2]
    with pytest.raises(ValueError):
        reply.json()


def test_contract_violation(server: LocalServer) -> None:
    server.enqueue(*[Fault.contract_violation()] * 4)
    items = embed(server, {"inputs": ["a", "b"]}).json()["data"]
    assert items == [{"object": "embedding", "index": 0}, {"object": "embedding", "index": 1}]
    assert all("id" not in m for m in call(server, "GET", "/v1/models").json()["data"])
    assert "id" not in call(server, "GET", "/v1/models/aligne-embed-small").json()
    streamed = embed(server, {"inputs": "a", "stream": True})  # answered as JSON
    assert streamed.status == 200 and "embedding" not in streamed.json()["data"][0]


def test_sse_cut_mid_event(server: LocalServer) -> None:
    server.enqueue(Fault.sse_cut_mid_event(after_items=1))
    _, decoded, terminated = stream(server, {"inputs": ["a", "b", "c"], "stream": True})
    assert terminated  # the chunked body itself ends cleanly
    events, rest = parse_events(decoded.decode())
    assert [name for name, _ in events] == ["embedding"]
    assert rest.startswith("event: embedding") and not rest.endswith("\n\n")


def test_sse_cut_after_all_items_cuts_done(server: LocalServer) -> None:
    server.enqueue(Fault.sse_cut_mid_event(after_items=5))
    _, decoded, terminated = stream(server, {"inputs": ["a", "b"], "stream": True})
    events, rest = parse_events(decoded.decode())
    assert terminated and len(events) == 2 and rest.startswith("event: done")


def test_sse_drop(server: LocalServer) -> None:
    server.enqueue(Fault.sse_drop(after_items=2))
    _, decoded, terminated = stream(server, {"inputs": ["a", "b", "c"], "stream": True})
    assert not terminated
    events, rest = parse_events(decoded.decode())
    assert [data["index"] for _, data in events] == [0, 1] and rest.startswith("event: emb")


def test_sse_error(server: LocalServer) -> None:
    server.enqueue(Fault.sse_error(status=503, after_items=1, message="overloaded"))
    _, decoded, terminated = stream(server, {"inputs": ["a", "b", "c"], "stream": True})
    assert terminated
    events, rest = parse_events(decoded.decode())
    assert [name for name, _ in events] == ["embedding", "error"] and rest == ""
    assert events[1][1] == {
        "error": {
            "message": "overloaded",
            "type": "server_error",
            "code": "service_unavailable",
            "param": None,
        },
        "status": 503,
    }


def test_sse_error_before_any_item(server: LocalServer) -> None:
    server.enqueue(Fault.sse_error(after_items=0))
    _, decoded, _ = stream(server, {"inputs": ["a"], "stream": True})
    events, _ = parse_events(decoded.decode())
    assert [name for name, _ in events] == ["error"] and events[0][1]["status"] == 500


def test_sse_shuffle(server: LocalServer) -> None:
    server.enqueue(Fault.sse_shuffle(seed=3), Fault.sse_shuffle(seed=3))
    payload = {"inputs": [f"text {i}" for i in range(8)], "stream": True}
    orders = []
    for _ in range(2):
        _, decoded, terminated = stream(server, payload)
        events, _ = parse_events(decoded.decode())
        assert terminated and events[-1][0] == "done"
        orders.append([data["index"] for _, data in events[:-1]])
    expected = list(range(8))
    random.Random(3).shuffle(expected)
    assert orders == [expected, expected] and expected != sorted(expected)


def test_sse_faults_leave_plain_answers_alone(server: LocalServer) -> None:
    server.enqueue(Fault.sse_drop(), Fault.sse_error())
    assert embed(server, {"inputs": "a"}).status == 200
    assert call(server, "GET", "/v1/models").status == 200
    assert server.pending_faults == 0


@pytest.mark.parametrize(
    ("make", "error", "argument"),
    [
        (lambda: Fault.status(99), InvalidArgumentValueError, "status_code"),
        (lambda: Fault.status(600), InvalidArgumentValueError, "status_code"),
        (lambda: Fault.status(True), InvalidArgumentTypeError, "status_code"),
        (lambda: Fault.status(503, body=3), InvalidArgumentTypeError, "body"),
        (lambda: Fault.html(700), InvalidArgumentValueError, "status_code"),
        (lambda: Fault.delay(-1), InvalidArgumentValueError, "seconds"),
        (lambda: Fault.delay(float("nan")), InvalidArgumentValueError, "seconds"),
        (lambda: Fault.delay("1"), InvalidArgumentTypeError, "seconds"),
        (lambda: Fault.slow_body(0.1, chunks=0), InvalidArgumentValueError, "chunks"),
        (lambda: Fault.stall_body(-0.1), InvalidArgumentValueError, "seconds"),
        (lambda: Fault.sse_drop(after_items=-1), InvalidArgumentValueError, "after_items"),
        (lambda: Fault.sse_error(status=42), InvalidArgumentValueError, "status_code"),
        (lambda: SseShuffle(seed=1.5), InvalidArgumentTypeError, "seed"),
        (lambda: NoFault(headers={"X-A": 1}), InvalidArgumentTypeError, "headers"),
    ],
)
def test_invalid_faults(make: Any, error: type[Exception], argument: str) -> None:
    with pytest.raises(error) as caught:
        make()
    assert caught.value.argument == argument  # type: ignore[attr-defined]


# The factories of the first versions and the classes they now return, written out.
FACTORIES = [
    (Fault.none(), NoFault()),
    (
        Fault.status(429, retry_after=2, retry_after_ms=1500, should_retry=False),
        StatusFault(
            429,
            headers=(
                ("retry-after", "2"),
                ("retry-after-ms", "1500"),
                ("x-should-retry", "false"),
            ),
        ),
    ),
    (
        Fault.status(500, body={"a": 1}, content_type="x/y", headers={"X-A": "1"}),
        StatusFault(500, b'{"a":1}', content_type="x/y", headers={"X-A": "1"}),
    ),
    (Fault.html(), HtmlFault(502)),
    (Fault.html(504, headers={"Via": "p"}), HtmlFault(504, headers=(("Via", "p"),))),
    (Fault.delay(1), Delay(1.0)),
    (Fault.slow_body(0.5), SlowBody(chunk_delay=0.5, chunks=4)),
    (Fault.stall_body(2), StallBody(2.0)),
    (Fault.drop_before_headers(), DropBeforeHeaders()),
    (Fault.drop_mid_body(), DropMidBody()),
    (Fault.malformed_json(), MalformedJson()),
    (Fault.truncated_json(), TruncatedJson()),
    (Fault.contract_violation(), ContractViolation()),
    (Fault.sse_cut_mid_event(), SseCutMidEvent(after_items=1)),
    (Fault.sse_drop(3), SseDrop(3)),
    (Fault.sse_error(503, 2, "busy"), SseErrorEvent(503, after_items=2, message="busy")),
    (Fault.sse_shuffle(7), SseShuffle(seed=7)),
]


@pytest.mark.parametrize(("built", "expected"), FACTORIES)
def test_factories_build_the_fault_classes(built: Fault, expected: Fault) -> None:
    assert type(built) is type(expected) and built == expected
    assert isinstance(built, Fault)


def test_fault_values() -> None:
    assert StatusFault(503) == StatusFault(503) != StatusFault(500)
    assert DropMidBody() != DropBeforeHeaders()  # equal fields, different classes
    assert len({Delay(1), Delay(1.0), Delay(2)}) == 2
    assert json.loads(StatusFault(503).body) == {
        "error": {
            "message": "The service is temporarily unavailable; please retry later.",
            "type": "server_error",
            "code": "service_unavailable",
            "param": None,
        }
    }
    # The repr shows what the value was built with (defaults left out, long bodies cut).
    assert repr(Fault.delay(1.5)) == "Delay(seconds=1.5)"
    assert repr(Fault.none()) == "NoFault()"
    assert repr(SlowBody(0.5, chunks=2)) == "SlowBody(chunk_delay=0.5, chunks=2)"
    assert repr(StatusFault(200, b"x" * 50, headers={"A": "b"})) == (
        "StatusFault(status_code=200, body=b'" + "x" * 40 + "...', headers=(('A', 'b'),))"
    )
    with pytest.raises(AttributeError):
        NoFault().headers = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fault()
    # `kind` and `FaultKind` are kept for code written against the tagged Fault.
    assert Fault.delay(1).kind is FaultKind.DELAY and Fault.html().kind is FaultKind.STATUS


def test_with_headers_keeps_the_class() -> None:
    fault = SseDrop(2).with_headers({"X-A": "1"}, retry_after=0.5, should_retry=True)
    assert fault == SseDrop(
        2, headers=(("X-A", "1"), ("retry-after", "0.5"), ("x-should-retry", "true"))
    )


def test_no_fault_sends_its_headers_and_is_logged_as_none(server: LocalServer) -> None:
    server.enqueue(NoFault(headers={"X-Note": "scripted"}))
    reply = call(server, "GET", "/v1/models")
    assert reply.status == 200 and reply.headers["x-note"] == "scripted"
    assert server.requests[-1].fault is None


def test_only_the_known_fault_classes_are_accepted(server: LocalServer) -> None:
    @attrs.frozen
    class Mine(Fault):
        pass

    for wrong in (Mine(), 503, None):
        with pytest.raises(InvalidArgumentTypeError):
            server.enqueue(wrong)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentTypeError):
            server.set_fault_rate(wrong, 1.0)  # type: ignore[arg-type]
    assert server.pending_faults == 0


# -- scripting ----------------------------------------------------------------------------


def test_enqueue_is_fifo_and_none_answers_normally(server: LocalServer) -> None:
    server.enqueue(Fault.status(503), Fault.status(500))
    server.enqueue(Fault.none(), Fault.status(429))
    assert server.pending_faults == 4
    statuses = [call(server, "GET", "/v1/models").status for _ in range(5)]
    assert statuses == [503, 500, 200, 429, 200]
    assert server.pending_faults == 0


def test_enqueue_with_path(server: LocalServer) -> None:
    server.enqueue(Fault.status(503), path="/v1/embeddings")
    server.enqueue(Fault.status(500))
    assert call(server, "GET", "/v1/models").status == 500  # takes the path-less one
    assert call(server, "GET", "/v1/models").status == 200  # skips the embeddings one
    assert embed(server, {"inputs": "a"}).status == 503
    assert embed(server, {"inputs": "a"}).status == 200


def test_enqueue_rejects_bad_arguments(server: LocalServer) -> None:
    with pytest.raises(TypeError):
        server.enqueue(503)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        server.enqueue(Fault.none(), path="v1/models")
    with pytest.raises(ValueError):
        server.set_fault_rate(Fault.status(503), 1.5)


def statuses_with_rate(server: LocalServer, seed: int) -> list[int]:
    server.reset()
    server.set_fault_rate(Fault.status(503), 0.5, seed=seed)
    return [call(server, "GET", "/v1/models").status for _ in range(40)]


def test_fault_rate_is_seeded(server: LocalServer) -> None:
    first = statuses_with_rate(server, seed=7)
    assert first == statuses_with_rate(server, seed=7)
    assert first != statuses_with_rate(server, seed=8)
    assert 5 < first.count(503) < 35 and set(first) == {200, 503}


def test_fault_rate_bounds_and_queue_precedence(server: LocalServer) -> None:
    server.set_fault_rate(Fault.status(500), 1.0)
    server.enqueue(Fault.none(), Fault.status(429))
    statuses = [call(server, "GET", "/v1/models").status for _ in range(4)]
    assert statuses == [200, 429, 500, 500]
    server.set_fault_rate(Fault.status(500), 0.0)
    assert call(server, "GET", "/v1/models").status == 200


# -- recording ----------------------------------------------------------------------------


def test_requests_are_recorded(server: LocalServer) -> None:
    server.enqueue(Fault.status(503))
    embed(server, {"inputs": ["a"]}, headers={"X-Trace": "abc"})
    call(server, "GET", "/v1/models?a=1&a=2&b=")
    embed(server, None, raw=b"not json")
    first, second, third = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.query) == ("POST", "/v1/embeddings", {})
    assert first.headers["x-trace"] == "abc"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.body == b'{"inputs": ["a"]}' and first.json == {"inputs": ["a"]}
    assert first.fault == Fault.status(503)
    assert (second.method, second.path) == ("GET", "/v1/models")
    assert second.query == {"a": ["1", "2"], "b": [""]}
    assert second.body == b"" and second.json is None and second.fault is None
    assert third.body == b"not json" and third.json is None
    assert server.requests is not server.requests  # a copy each time


def test_request_log_limit() -> None:
    with LocalServer(request_log_limit=3) as server:
        for i in range(5):
            call(server, "GET", f"/v1/models?i={i}")
        assert [r.query["i"] for r in server.requests] == [["2"], ["3"], ["4"]]


def test_reset_clears_everything(server: LocalServer) -> None:
    server.enqueue(Fault.status(503))
    server.set_fault_rate(Fault.status(500), 1.0)
    call(server, "GET", "/v1/nothing")
    server.enqueue(Fault.status(503))
    server.reset()
    assert server.requests == [] and server.pending_faults == 0
    assert call(server, "GET", "/v1/models").status == 200


# -- concurrency and lifecycle -----------------------------------------------------------


def test_concurrent_clients(server: LocalServer) -> None:
    failures: list[BaseException] = []
    ids: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        try:
            for i in range(50):
                body = json.dumps({"inputs": [f"client {number} request {i}"], "dimensions": 16})
                conn.request("POST", "/v1/embeddings", body, {"Authorization": f"Bearer {KEY}"})
                response = conn.getresponse()
                data = json.loads(response.read())
                assert response.status == 200 and len(data["data"][0]["embedding"]) == 16
                with lock:
                    ids.append(response.getheader("x-request-id") or "")
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_LIMIT * 3)
        assert not thread.is_alive(), "a client thread hung"
    assert failures == []
    assert len(ids) == 800 and len(set(ids)) == 800
    assert len(server.requests) == 800


def test_lifecycle() -> None:
    server = LocalServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    assert repr(server) == "<LocalServer stopped>"
    server.start()
    try:
        with pytest.raises(RuntimeError):
            server.start()
        assert repr(server) == f"<LocalServer {server.url}>"
    finally:
        server.stop()
    server.stop()  # idempotent
    with server:  # restartable
        assert call(server, "GET", "/v1/models").status == 200
    with pytest.raises(ValueError):
        LocalServer(api_key="")


def test_stop_closes_keep_alive_connections_promptly() -> None:
    server = LocalServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    conn.getresponse().read()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 4.0  # not the 5 s the server waits for a handler
    assert conn.sock is not None and conn.sock.recv(1) == b""  # the server closed it
    conn.close()


@pytest.mark.parametrize("fault", [Fault.delay(60), Fault.stall_body(60), Fault.slow_body(60)])
def test_stop_interrupts_waiting_faults(fault: Fault) -> None:
    server = LocalServer().start()
    server.enqueue(fault)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(raw_request(server, "GET", "/v1/models"))
        wait_until(lambda: server.requests, "the server to receive the request")
        started = time.monotonic()
        server.stop()
        # A prompt stop takes milliseconds; one that waited for the fault's handler would take
        # the server's 5 s join limit (the fault itself: 60 s). 4 s is room for a loaded machine.
        assert time.monotonic() - started < 4.0
    finally:
        sock.close()


def test_no_tracebacks_on_client_disconnects(capfd: pytest.CaptureFixture[str]) -> None:
    with LocalServer() as server:
        server.enqueue(
            Fault.slow_body(0.05, chunks=8),
            Fault.drop_before_headers(),
            Fault.drop_mid_body(),
            Fault.sse_drop(),
        )
        # A client that leaves in the middle of a slow answer.
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(raw_request(server, "POST", "/v1/embeddings", {"inputs": "x"}))
        sock.recv(10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not a polite close
        for _ in range(3):
            exchange(
                server,
                raw_request(server, "POST", "/v1/embeddings", {"inputs": "x", "stream": True}),
            )
        # A client that sends half a request and leaves.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as half:
            half.sendall(b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
    out, err = capfd.readouterr()
    assert err == "" and out == ""


def test_verbose_writes_access_logs(capfd: pytest.CaptureFixture[str]) -> None:
    with LocalServer(verbose=True) as server:
        call(server, "GET", "/v1/models")
    assert '"GET /v1/models HTTP/1.1" 200' in capfd.readouterr().err


def test_serve_prints_the_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = "from aligneai.testing._server import serve; serve(port=0, verbose=False)"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # not the repo root, whose ./aligneai would shadow the package
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first)
        assert url, first
        request = urllib.request.Request(
            url.group(1) + "/models", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped" in out and err == ""


def test_server_modules_import_only_the_stdlib_attrs_and_the_core() -> None:
    import ast

    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        pytest.skip("sys.stdlib_module_names needs Python 3.10")
    import aligneai.testing._server as server_module

    # The server runs on a bare install (``aligneai serve``) and is an independent model of the
    # wire for the client's tests: it may use the standard library, attrs (a required
    # dependency) and the sans-IO core (the wire's constants and errors, defined once), never
    # the client, the transports or an optional dependency.
    folder = Path(server_module.__file__).parent
    names = ("_server.py", "_faults.py", "_api.py", "_embedder.py", "_ratelimit.py")
    for path in [folder / name for name in names]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                allowed = top in stdlib or top in ("__future__", "attrs")
                allowed = allowed or module == "aligneai.testing"
                allowed = allowed or module.startswith(("aligneai.testing._", "aligneai.core."))
                assert allowed, f"{path.name} imports {module}"


def test_server_loads_no_optional_dependency() -> None:
    code = (
        "import sys, aligneai.testing._server; "
        "print(sorted({'numpy', 'urllib3', 'aiohttp', 'pyarrow', 'hypothesis'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"
