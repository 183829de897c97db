"""The API key stays secret, redirects are not followed, and size limits hold.

A recognisable key (``sk-LEAKCHECK-<random>``) is used for every call; then every place it
could leak to is searched for it: client reprs, the str/repr/attributes/traceback (with chained
causes) of every exception the fault matrix raises, every log record at DEBUG (the ``aligneai``
logger and the root logger, so urllib3's and aiohttp's records too), raw responses and streams,
and the command line's output for an authentication failure. (A pickled client must carry the
key to work, so pickles are not searched.)
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import socket
import ssl
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aligneai import (
    AligneAI,
    APIStatusError,
    AsyncAligneAI,
    AuthenticationError,
    ResponseTooLargeError,
    SSEDecodeError,
    Timeout,
)
from aligneai._logging import RedactingFilter
from aligneai.cli import main as cli_main
from aligneai.testing import Fault, LocalServer
from aligneai.transports.aiohttp_transport import AiohttpTransport
from aligneai.transports.urllib3_transport import Urllib3Transport, default_ssl_context

KEY = f"sk-LEAKCHECK-{uuid.uuid4().hex}"
SECRET_PART = KEY.split("-")[-1]  # the random tail: catches a partly masked key too
PATH = "/v1/embeddings"
TEXTS = ["hello world", "secrets"]
DIMS = 8


def _load_matrix() -> Any:
    # tests/ is not a package (--import-mode=importlib): load the matrix from its file.
    name = "aligneai_reliability_fault_matrix"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("fault_matrix.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fm = _load_matrix()


def assert_no_key(text: str, where: str) -> None:
    assert KEY not in text, f"the API key leaked into {where}: {text[:300]!r}"
    assert SECRET_PART not in text, f"part of the API key leaked into {where}: {text[:300]!r}"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    return default_ssl_context()


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # Clients built with default transports read proxies from the environment: loopback only.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def _closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _sync_client(base_url: str, context: ssl.SSLContext, **kwargs: Any) -> AligneAI:
    kwargs.setdefault("timeout", Timeout(read=fm.READ_TIMEOUT))
    return AligneAI(
        api_key=KEY,
        base_url=base_url,
        transport=Urllib3Transport(ssl_context=context, trust_env=False),
        _sleep=lambda _seconds: None,
        **kwargs,
    )


async def _no_sleep(_seconds: float) -> None:
    pass


def _async_client(base_url: str, context: ssl.SSLContext, **kwargs: Any) -> AsyncAligneAI:
    kwargs.setdefault("timeout", Timeout(read=fm.READ_TIMEOUT))
    return AsyncAligneAI(
        api_key=KEY,
        base_url=base_url,
        transport=AiohttpTransport(ssl_context=context, trust_env=False),
        _sleep=_no_sleep,
        **kwargs,
    )


def _sync_call(client: AligneAI, mode: str) -> BaseException | None:
    try:
        if mode == "plain":
            client.embeddings.create(inputs=TEXTS, dimensions=DIMS)
        else:
            with client.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True) as stream:
                stream.get_final_response()
    except Exception as exc:
        return exc
    finally:
        client._transport.close()
    return None


def _async_call(base_url: str, context: ssl.SSLContext, mode: str, **kwargs: Any) -> Any:
    async def run() -> BaseException | None:
        client = _async_client(base_url, context, **kwargs)
        try:
            if mode == "plain":
                await client.embeddings.create(inputs=TEXTS, dimensions=DIMS)
            else:
                stream = await client.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True)
                async with stream:
                    await stream.get_final_response()
        except Exception as exc:
            return exc
        finally:
            await client._transport.aclose()
        return None

    return asyncio.run(run())


def _exception_texts(exc: BaseException) -> Iterator[tuple[str, str]]:
    """Every rendering of ``exc`` that may reach a log, a terminal or an error tracker."""
    yield "str", str(exc)
    yield "repr", repr(exc)
    yield "attributes", repr(vars(exc))
    yield "traceback", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # chained causes, as error trackers show
        seen.add(id(link))
        yield f"chained {type(link).__name__} str", str(link)
        yield f"chained {type(link).__name__} repr", repr(link)
        yield f"chained {type(link).__name__} args", repr(link.args)
        link = link.__cause__ or link.__context__


def _run_matrix(server: LocalServer, context: ssl.SSLContext) -> list[BaseException]:
    """Every persistent fault of the matrix, both clients, both kinds of call (1 retry)."""
    errors: list[BaseException] = []
    for case in fm.FAULTS:
        for mode in case.modes:
            if server.requests:  # positive control: the key was sent with every request
                assert {r.headers.get("authorization") for r in server.requests} == {
                    f"Bearer {KEY}"
                }
            server.reset()
            if case.make is None:
                base_url = f"http://127.0.0.1:{_closed_port()}/v1"
            else:
                base_url = server.url
                server.set_fault_rate(case.make(), 1.0)
            for client_kind in ("sync", "async"):
                if client_kind == "sync":
                    error = _sync_call(_sync_client(base_url, context, max_retries=1), mode)
                else:
                    error = _async_call(base_url, context, mode, max_retries=1)
                assert error is not None, f"{case.key} {mode} {client_kind}: no error"
                errors.append(error)
    server.reset()
    return errors


# -- reprs and exceptions --------------------------------------------------------------------


def test_client_reprs_hide_the_key(server: LocalServer, ssl_context: ssl.SSLContext) -> None:
    sync_client = _sync_client(server.url, ssl_context)
    async_client = _async_client(server.url, ssl_context)
    # Positive control: the clients do hold the key (what is checked below is not vacuous).
    assert sync_client._preparer.headers["Authorization"] == f"Bearer {KEY}"
    for client in (sync_client, async_client):
        for where, text in (
            ("repr(client)", repr(client)),
            ("str(client)", str(client)),
            ("repr(with_options)", repr(client.with_options(max_retries=0))),
            ("repr(options)", repr(client._options)),
            ("repr(embeddings)", repr(client.embeddings)),
            ("repr(models)", repr(client.models)),
        ):
            assert_no_key(text, where)
    sync_client._transport.close()


def test_exceptions_of_the_fault_matrix_hide_the_key(
    server: LocalServer, ssl_context: ssl.SSLContext
) -> None:
    errors = _run_matrix(server, ssl_context)
    assert len(errors) == 2 * sum(len(case.modes) for case in fm.FAULTS)
    for error in errors:
        for where, text in _exception_texts(error):
            assert_no_key(text, f"{type(error).__name__} {where}")


@pytest.mark.parametrize("scrubber", ["installed", "removed"])
def test_debug_logs_of_failing_and_retried_calls_hide_the_key(
    server: LocalServer,
    ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    scrubber: str,
) -> None:
    """With the redacting filter, and without it: the library itself must never log the key."""
    logger = logging.getLogger("aligneai")
    removed = [f for f in logger.filters if isinstance(f, RedactingFilter)]
    if scrubber == "removed":
        for log_filter in removed:
            logger.removeFilter(log_filter)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aligneai")
    try:
        for fault in (Fault.status(503), Fault.drop_before_headers(), Fault.status(401)):
            for client_kind in ("sync", "async"):
                server.reset()
                server.enqueue(fault, fault)  # failing twice with 1 retry: a failing call
                server.enqueue(fault)  # ... then a retried call that succeeds
                for mode in ("plain", "stream"):
                    if client_kind == "sync":
                        _sync_call(_sync_client(server.url, ssl_context, max_retries=1), mode)
                    else:
                        _async_call(server.url, ssl_context, mode, max_retries=1)
        server.reset()
    finally:
        if scrubber == "removed":
            for log_filter in removed:
                logger.addFilter(log_filter)
    records = caplog.records
    assert any(r.name == "aligneai" and r.levelno == logging.INFO for r in records), "no retry"
    assert any(r.name == "aligneai" and r.levelno == logging.DEBUG for r in records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        assert_no_key(formatter.format(record), f"the log record {record.name}")
        assert_no_key(repr(record.args), f"the arguments of log record {record.name}")
    assert_no_key(caplog.text, "the captured log")


def test_raw_responses_and_streams_hide_the_key(
    server: LocalServer, ssl_context: ssl.SSLContext
) -> None:
    server.reset()
    server.enqueue(Fault.status(503))  # one retry first
    client = _sync_client(server.url, ssl_context)
    raw = client.embeddings.with_raw_response.create(inputs=TEXTS, dimensions=DIMS)
    assert raw.retries_taken == 1
    stream = client.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True)
    texts = [repr(raw), str(raw), repr(dict(raw.headers)), repr(raw.parse()), repr(stream)]
    stream.close()
    client._transport.close()

    async def run() -> list[str]:
        aclient = _async_client(server.url, ssl_context)
        araw = await aclient.embeddings.with_raw_response.create(inputs=TEXTS, dimensions=DIMS)
        astream = await aclient.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True)
        found = [repr(araw), repr(dict(araw.headers)), repr(araw.parse()), repr(astream)]
        await astream.aclose()
        await aclient._transport.aclose()
        return found

    for text in texts + asyncio.run(run()):
        assert_no_key(text, "a raw response or stream")


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_cli_auth_failure_hides_the_key(debug: bool, capsys: pytest.CaptureFixture[str]) -> None:
    aligneai_logger = logging.getLogger("aligneai")
    level = aligneai_logger.level  # --debug sets it; restore it for the other tests
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with LocalServer(api_key="sk-the-only-accepted-key") as strict:
            argv = ["embed", "hello", "--api-key", KEY, "--base-url", strict.url]
            argv += ["--max-retries", "0"] + (["--debug"] if debug else [])
            code = cli_main(argv, stdout=stdout, stderr=stderr)
            assert len(strict.requests) == 1
    finally:
        aligneai_logger.setLevel(level)
    assert code == 1
    assert "AuthenticationError" in stderr.getvalue()
    captured = capsys.readouterr()
    for where, text in (
        ("the CLI's stderr", stderr.getvalue()),
        ("the CLI's stdout", stdout.getvalue()),
        ("sys.stderr", captured.err),
        ("sys.stdout", captured.out),
    ):
        assert_no_key(text, where)


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_redirect_to_another_host_is_not_followed(
    server: LocalServer, ssl_context: ssl.SSLContext, status: int, client_kind: str
) -> None:
    with LocalServer(host="localhost") as other:  # another host name, another port
        server.reset()
        location = other.url + "/embeddings"
        server.set_fault_rate(Fault.status(status, headers={"Location": location}), 1.0)
        if client_kind == "sync":
            error = _sync_call(_sync_client(server.url, ssl_context), "plain")
        else:
            error = _async_call(server.url, ssl_context, "plain")
        server.reset()
        assert other.requests == [], "the redirect was followed"
    assert type(error) is APIStatusError, repr(error)
    assert error.status_code == status
    assert error.headers.get("location") == location


# -- plain http ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "warns"),
    [
        ("http://api.example.com/v1", True),
        ("http://10.1.2.3:8080/v1", True),
        ("https://api.example.com/v1", False),
        ("http://localhost:8000/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://[::1]:8000/v1", False),
    ],
)
@pytest.mark.parametrize("client_class", [AligneAI, AsyncAligneAI])
def test_plain_http_to_a_remote_host_warns(
    caplog: pytest.LogCaptureFixture, base_url: str, warns: bool, client_class: type
) -> None:
    caplog.set_level(logging.WARNING, logger="aligneai")
    client_class(api_key=KEY, base_url=base_url)  # constructed only: nothing is sent
    warnings = [r for r in caplog.records if r.name == "aligneai" and r.levelno >= logging.WARNING]
    assert len(warnings) == (1 if warns else 0), [r.getMessage() for r in warnings]
    for record in warnings:
        assert "http://" in record.getMessage()
        assert_no_key(record.getMessage(), "the plain-http warning")


# -- size limits -----------------------------------------------------------------------------


class _BigBodyHandler(BaseHTTPRequestHandler):
    """Answers every POST with a 200 JSON body of 4096 bytes without a Content-Length."""

    protocol_version = "HTTP/1.1"
    requests_seen = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with _BigBodyHandler.lock:
            type(self).requests_seen += 1
        body = b'{"object": "list", "data": [' + b" " * 4000 + b"]}"
        chunked = self.path.endswith("/chunked/embeddings")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        for start in range(0, len(body), 512):
            piece = body[start : start + 512]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.close_connection = True


@pytest.fixture
def big_body_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BigBodyHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _BigBodyHandler.requests_seen = 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_body_over_max_response_bytes_with_content_length(
    server: LocalServer, ssl_context: ssl.SSLContext, client_kind: str
) -> None:
    server.reset()
    inputs = [f"text number {n}" for n in range(40)]  # ~3 kB of base64 answer

    def call() -> BaseException | None:
        if client_kind == "sync":
            client = _sync_client(server.url, ssl_context, max_response_bytes=1000)
            try:
                client.embeddings.create(inputs=inputs, dimensions=DIMS)
            except Exception as exc:
                return exc
            finally:
                client._transport.close()
            return None

        async def run() -> BaseException | None:
            aclient = _async_client(server.url, ssl_context, max_response_bytes=1000)
            try:
                await aclient.embeddings.create(inputs=inputs, dimensions=DIMS)
            except Exception as exc:
                return exc
            finally:
                await aclient._transport.aclose()
            return None

        return asyncio.run(run())

    error = call()
    assert type(error) is ResponseTooLargeError, repr(error)
    assert len([r for r in server.requests if r.path == PATH]) == 1  # not retried


@pytest.mark.parametrize("framing", ["chunked", "close-delimited"])
@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_body_over_max_response_bytes_without_content_length(
    big_body_server: str, ssl_context: ssl.SSLContext, framing: str, client_kind: str
) -> None:
    base_url = big_body_server + ("/chunked" if framing == "chunked" else "/close")
    if client_kind == "sync":
        client = _sync_client(base_url, ssl_context, max_response_bytes=1000)
        try:
            with pytest.raises(ResponseTooLargeError):
                client.embeddings.create(inputs=TEXTS)
        finally:
            client._transport.close()
    else:

        async def run() -> None:
            aclient = _async_client(base_url, ssl_context, max_response_bytes=1000)
            try:
                with pytest.raises(ResponseTooLargeError):
                    await aclient.embeddings.create(inputs=TEXTS)
            finally:
                await aclient._transport.aclose()

        asyncio.run(run())
    assert _BigBodyHandler.requests_seen == 1  # not retried


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_sse_line_over_the_bound_fails(
    server: LocalServer, ssl_context: ssl.SSLContext, client_kind: str
) -> None:
    """An event-stream line longer than the decoder's bound (16 MiB) raises SSEDecodeError."""
    line = b"data: " + b"a" * ((16 << 20) + 16) + b"\n\n"
    server.reset()
    server.enqueue(Fault.status(200, body=line, content_type="text/event-stream"))
    if client_kind == "sync":
        error = _sync_call(_sync_client(server.url, ssl_context, timeout=10), "stream")
    else:
        error = _async_call(server.url, ssl_context, "stream", timeout=10)
    server.reset()
    assert type(error) is SSEDecodeError, repr(error)


def test_auth_failure_is_authentication_error(ssl_context: ssl.SSLContext) -> None:
    """The auth failure the CLI test relies on, seen from the client (no retry, 401)."""
    with LocalServer(api_key="sk-the-only-accepted-key") as strict:
        error = _sync_call(_sync_client(strict.url, ssl_context), "plain")
        assert len(strict.requests) == 1
    assert type(error) is AuthenticationError
    for where, text in _exception_texts(error):
        assert_no_key(text, f"AuthenticationError {where}")
