"""Lifecycle of the sync client against a real local server: threads, close, fork, pickle,
secrets in reprs and logs, the module-level client, the plain-http warning and the README
example run verbatim."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response as WsgiResponse

import aligneai
from aligneai import (
    AligneAI,
    APIConnectionError,
    AuthenticationError,
    CreateEmbeddingResponse,
)

KEY = "sk-SECRET-abc123"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "get_embeddings.py"
SEED_README = REPO.parent / "shared" / "seed-README.md"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# -- a server that answers each input with a vector derived from that input ------------------------


def vector_for(text: str) -> list[float]:
    """The embedding the test server returns for ``text`` (small ints: exact in float32)."""
    return [float(b) for b in hashlib.sha256(text.encode()).digest()[:8]]


def embeddings_body(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    data = []
    for index, text in enumerate(inputs):
        vector = vector_for(text)
        embedding: Any = vector
        if payload.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": "test-embedder",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }


def embeddings_handler(request: WsgiRequest) -> WsgiResponse:
    body = embeddings_body(json.loads(request.get_data()))
    return WsgiResponse(
        json.dumps(body),
        status=200,
        content_type="application/json",
        # The client's port: tells apart the connections of a parent and a forked child.
        headers={"x-peer-port": str(request.environ.get("REMOTE_PORT"))},
    )


def error_json(message: str) -> str:
    return json.dumps({"error": {"message": message, "type": "test_error"}})


@pytest.fixture(scope="module")
def _server() -> Iterator[HTTPServer]:
    # Threaded: werkzeug then speaks HTTP/1.1 with keep-alive and serves connections at once.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(_server: HTTPServer) -> Iterator[HTTPServer]:
    _server.clear()
    yield _server
    _server.clear()


class _KeepAliveHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length: connections stay open between requests, unlike
    # pytest-httpserver's werkzeug server, which closes each one. Pools and fork-safety are only
    # observable with connections that live on.
    protocol_version = "HTTP/1.1"
    server: KeepAliveServer

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = json.dumps(embeddings_body(payload)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-peer-port", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 16 threads connect at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.requests: list[tuple[str, dict[str, str]]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def keepalive_server() -> Iterator[KeepAliveServer]:
    server = KeepAliveServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIGNEAI_API_KEY", "ALIGNEAI_BASE_URL", "ALIGNEAI_LOG"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:  # loopback traffic must never go to a proxy
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def base_url(server: HTTPServer) -> str:
    return server.url_for("/v1")


def serve_embeddings(server: HTTPServer) -> None:
    server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings_handler)


def make_client(server: HTTPServer, **kwargs: Any) -> AligneAI:
    kwargs.setdefault("_sleep", lambda seconds: None)
    return AligneAI(api_key=KEY, base_url=base_url(server), **kwargs)


def authorizations(server: HTTPServer) -> list[str | None]:
    return [request.headers.get("Authorization") for request, _ in server.log]


def check_embeds(response: CreateEmbeddingResponse, inputs: list[str]) -> None:
    assert isinstance(response, CreateEmbeddingResponse)
    assert [item.index for item in response.data] == list(range(len(inputs)))
    assert [item.embedding for item in response.data] == [vector_for(t) for t in inputs]


def subprocess_env(**extra: str) -> dict[str, str]:
    """os.environ (PYTHONPATH included, so the child imports the same package), cleaned."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALIGNEAI_") and k.upper() not in PROXY_VARIABLES
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- threads ---------------------------------------------------------------------------------------


def test_sixteen_threads_share_one_client(keepalive_server: KeepAliveServer) -> None:
    threads, calls = 16, 50
    client = AligneAI(api_key=KEY, base_url=keepalive_server.base_url, max_retries=0)

    def worker(thread: int) -> int:
        for call in range(calls):
            inputs = [f"thread {thread} call {call}", f"thread {thread} call {call} second"]
            check_embeds(client.embeddings.create(inputs=inputs), inputs)
        return calls

    with client, ThreadPoolExecutor(max_workers=threads) as pool:
        done = sum(pool.map(worker, range(threads)))
    assert done == threads * calls
    assert len(keepalive_server.requests) == threads * calls
    assert {h["authorization"] for _, h in keepalive_server.requests} == {f"Bearer {KEY}"}


# -- close -----------------------------------------------------------------------------------------


def idle_connections(client: AligneAI, url: str) -> list[Any]:
    # The pooled (idle) urllib3 connections of the client's default transport. Only the
    # connections are returned: holding their pool would keep it from being closed.
    managers = client._transport._pools.values()  # type: ignore[attr-defined]
    return [
        conn
        for manager in managers
        for conn in list(manager.connection_from_url(url).pool.queue)
        if conn is not None
    ]


def test_with_block_closes_the_pool(keepalive_server: KeepAliveServer) -> None:
    url = keepalive_server.base_url
    with AligneAI(api_key=KEY, base_url=url) as client:
        assert isinstance(client, AligneAI)
        check_embeds(client.embeddings.create(inputs=["in the block"]), ["in the block"])
        connections = idle_connections(client, url)
        assert len(connections) == 1
        assert not connections[0].is_closed
    assert connections[0].is_closed


def test_close_is_idempotent(keepalive_server: KeepAliveServer) -> None:
    url = keepalive_server.base_url
    client = AligneAI(api_key=KEY, base_url=url)
    check_embeds(client.embeddings.create(inputs=["once"]), ["once"])
    connections = idle_connections(client, url)
    assert len(connections) == 1 and not connections[0].is_closed

    client.close()
    assert connections[0].is_closed
    # Closing again (by hand or by a with block) raises nothing and opens nothing.
    client.close()
    with client:
        pass
    client.close()
    assert idle_connections(client, url) == []
    assert len(keepalive_server.requests) == 1

    # A client that never sent anything has nothing to close, twice over.
    never_used = AligneAI(api_key=KEY, base_url=url)
    never_used.close()
    never_used.close()
    assert idle_connections(never_used, url) == []


# -- fork ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is not available")
# Python 3.12+ warns about fork() in a process with threads (the test server's thread).
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_client_works_in_a_forked_child_and_in_the_parent_after(
    keepalive_server: KeepAliveServer,
) -> None:
    client = AligneAI(api_key=KEY, base_url=keepalive_server.base_url, max_retries=0)
    before = client.embeddings.with_raw_response.create(inputs=["before the fork"])
    parent_port = before.headers["x-peer-port"]  # a pooled connection the child inherits

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit code, never return
        code = 3
        try:
            os.close(read_end)
            raw = client.embeddings.with_raw_response.create(inputs=["in the child"])
            ok = raw.parse().data[0].embedding == vector_for("in the child")
            report = {"ok": ok, "port": raw.headers["x-peer-port"]}
            os.write(write_end, json.dumps(report).encode())
            code = 0 if ok else 1
        except BaseException:
            try:
                os.write(write_end, json.dumps({"error": traceback.format_exc()}).encode())
            finally:
                code = 2
        finally:
            os._exit(code)

    os.close(write_end)
    try:
        # The parent keeps using the client (and its pooled connection) while the child runs.
        meanwhile = client.embeddings.with_raw_response.create(inputs=["parent, meanwhile"])
        check_embeds(meanwhile.parse(), ["parent, meanwhile"])
        assert meanwhile.headers["x-peer-port"] == parent_port
        deadline = time.monotonic() + 20
        while True:
            waited, status = os.waitpid(pid, os.WNOHANG)
            if waited:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.005)
        with os.fdopen(read_end, "rb") as pipe:
            report = json.loads(pipe.read() or b"{}")
        # and after the child is gone, on the same pooled connection
        after = client.embeddings.with_raw_response.create(inputs=["parent, after"])
        check_embeds(after.parse(), ["parent, after"])
        assert after.headers["x-peer-port"] == parent_port
    finally:
        client.close()
    assert os.WIFEXITED(status), status
    assert os.WEXITSTATUS(status) == 0, report
    assert report["ok"] is True
    # The child opened its own connection instead of writing on the parent's pooled socket.
    assert report["port"] != parent_port
    assert len(keepalive_server.requests) == 4


# -- pickle ----------------------------------------------------------------------------------------


def test_a_pickled_copy_makes_calls(server: HTTPServer) -> None:
    serve_embeddings(server)
    client = AligneAI(
        api_key=KEY, base_url=base_url(server), max_retries=1, default_headers={"X-Team": "search"}
    )
    check_embeds(client.embeddings.create(inputs=["warm the pool"]), ["warm the pool"])
    copy = pickle.loads(pickle.dumps(client))
    try:
        assert isinstance(copy, AligneAI)
        assert copy.base_url == client.base_url
        assert copy.max_retries == 1
        check_embeds(copy.embeddings.create(inputs=["from the copy"]), ["from the copy"])
        raw = copy.embeddings.with_raw_response.create(inputs=["raw from the copy"])
        assert raw.status_code == 200
        check_embeds(client.embeddings.create(inputs=["original"]), ["original"])
    finally:
        copy.close()
        client.close()
    last = server.log[-2][0]  # the copy's last request
    assert last.headers["Authorization"] == f"Bearer {KEY}"
    assert last.headers["X-Team"] == "search"


# -- the key never shows ---------------------------------------------------------------------------


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert "SECRET" not in text


def test_key_never_in_reprs_errors_or_debug_logs(
    server: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aligneai")
    server.expect_oneshot_request("/v1/embeddings", method="POST").respond_with_data(
        error_json("overloaded"), status=503, content_type="application/json"
    )
    serve_embeddings(server)
    server.expect_request("/v1/models", method="GET").respond_with_data(
        error_json("Incorrect API key provided"),
        status=401,
        content_type="application/json",
        headers={"x-request-id": "req_1"},
    )
    client = make_client(server, default_headers={"X-Team": "search"})
    assert_no_key(repr(client), str(client), repr(client.with_options(max_retries=0)))

    raw = client.embeddings.with_raw_response.create(inputs=["retried once"])
    assert raw.retries_taken == 1
    check_embeds(raw.parse(), ["retried once"])
    assert_no_key(repr(raw), str(raw), repr(raw.headers), repr(raw.parse()))

    with pytest.raises(AuthenticationError) as status_error:
        client.models.list()
    err = status_error.value
    assert err.status_code == 401
    assert err.request is not None
    formatted = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert_no_key(repr(err), str(err), repr(err.request), repr(err.response), formatted)
    assert_no_key(repr(vars(err)))

    refused = AligneAI(
        api_key=KEY,
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=1,
        _sleep=lambda seconds: None,
    )
    with refused, pytest.raises(APIConnectionError) as connection_error:
        refused.embeddings.create(inputs=["nobody listens"])
    err2 = connection_error.value
    formatted = "".join(traceback.format_exception(type(err2), err2, err2.__traceback__))
    assert_no_key(repr(err2), str(err2), repr(err2.request), formatted, repr(vars(err2)))

    # Even a careless log call on the library's logger is scrubbed.
    logging.getLogger("aligneai").debug("headers: %r", {"Authorization": f"Bearer {KEY}"})
    logging.getLogger("aligneai").debug("Authorization: Bearer %s", KEY)

    records = [r for r in caplog.records if r.name == "aligneai"]
    messages = [r.getMessage() for r in records]
    # Non-vacuous: the attempts, the retry and the failures were all logged.
    assert any("-> 503" in m for m in messages), messages
    assert any("-> 200" in m for m in messages), messages
    assert any("-> 401" in m for m in messages), messages
    assert any(m.startswith("Retrying") for m in messages), messages
    assert any("failed" in m for m in messages), messages
    assert_no_key(caplog.text, *messages, *(repr(r.args) for r in records))
    client.close()


def test_aligneai_log_debug_prints_attempts_without_the_key(
    server: HTTPServer, tmp_path: Path
) -> None:
    server.expect_oneshot_request("/v1/embeddings", method="POST").respond_with_data(
        error_json("busy"), status=503, headers={"retry-after-ms": "1"}
    )
    serve_embeddings(server)
    script = (
        "import aligneai\n"
        f"client = aligneai.AligneAI(api_key={KEY!r}, base_url={base_url(server)!r})\n"
        "response = client.embeddings.create(inputs=['logged'])\n"
        "print(len(response.data))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=subprocess_env(ALIGNEAI_LOG="debug"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    url = base_url(server) + "/embeddings"
    attempt_lines = [line for line in result.stderr.splitlines() if f"HTTP POST {url}" in line]
    assert len(attempt_lines) == 2, result.stderr
    assert "-> 503" in attempt_lines[0] and "DEBUG" in attempt_lines[0]
    assert "-> 200" in attempt_lines[1]
    assert "Retrying POST" in result.stderr
    assert_no_key(result.stderr, result.stdout)


# -- the module-level client -----------------------------------------------------------------------


def test_module_level_client_follows_the_api_key(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aligneai import _module_client

    serve_embeddings(server)
    saved_state = dict(_module_client._state)
    monkeypatch.setattr(aligneai, "api_key", "sk-module-one", raising=False)
    monkeypatch.setattr(aligneai, "base_url", base_url(server), raising=False)
    try:
        check_embeds(aligneai.embeddings.create(inputs=["module one"]), ["module one"])
        first = _module_client.module_client()
        check_embeds(aligneai.embeddings.create(inputs=["module again"]), ["module again"])
        assert _module_client.module_client() is first  # unchanged settings: same client

        aligneai.api_key = "sk-module-two"
        check_embeds(aligneai.embeddings.create(inputs=["module two"]), ["module two"])
        assert _module_client.module_client() is not first
        assert authorizations(server) == [
            "Bearer sk-module-one",
            "Bearer sk-module-one",
            "Bearer sk-module-two",
        ]
    finally:
        current = _module_client._state.get("client")
        if current is not None and current is not saved_state.get("client"):
            current.close()
        _module_client._state.clear()
        _module_client._state.update(saved_state)


# -- the plain-http warning ------------------------------------------------------------------------


def test_plain_http_to_a_remote_host_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aligneai")
    client = AligneAI(api_key=KEY, base_url="http://api.example.com/v1")  # nothing is sent
    client.close()
    warnings = [r for r in caplog.records if r.name == "aligneai" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "http://api.example.com/v1" in warnings[0].getMessage()
    assert "unencrypted" in warnings[0].getMessage()
    assert_no_key(caplog.text)

    caplog.clear()
    for quiet in ("http://127.0.0.1:8080/v1", "http://localhost/v1", "https://api.example.com"):
        AligneAI(api_key=KEY, base_url=quiet).close()
    assert not [r for r in caplog.records if r.name == "aligneai"]


# -- the README example, verbatim ------------------------------------------------------------------


def test_readme_example_runs_verbatim(server: HTTPServer, tmp_path: Path) -> None:
    serve_embeddings(server)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=subprocess_env(ALIGNEAI_API_KEY=KEY, ALIGNEAI_BASE_URL=base_url(server)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    header = "Embeddings created sccessfully:"
    assert result.stdout.startswith(header), result.stdout[:200]
    printed = json.loads(result.stdout[len(header) :])
    inputs = [
        "The new coffee blend from BeanWorks is robust and flavorful",
        "Looking for a budget-friendly beach vacation spot in July with great food and "
        "snorkeling options.",
    ]
    assert printed["object"] == "list"
    assert [item["embedding"] for item in printed["data"]] == [vector_for(t) for t in inputs]
    assert printed["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert authorizations(server) == [f"Bearer {KEY}"]
    assert_no_key(result.stdout, result.stderr)


def test_example_is_byte_identical_to_the_readme_snippet() -> None:
    if not SEED_README.exists():
        pytest.skip(f"{SEED_README} is absent")
    readme = SEED_README.read_bytes()
    start = readme.index(b"```python\n") + len(b"```python\n")
    end = readme.index(b"```", start)
    assert EXAMPLE.read_bytes() == readme[start:end]
