"""Every row of the fault matrix, run against a real `LocalServer` with both clients.

Each row's fault is injected by the server (``set_fault_rate(fault, 1.0)`` for a persistent
fault, ``enqueue(fault)`` for "once, then OK"); "connection refused" uses a closed port, and its
"once" variant starts a server on that port from inside the first retry sleep. Retry sleeps are
injected and recorded, never slept: the only real waits are the read timeouts of the stall rows
(`fm.READ_TIMEOUT`, 0.5 s, against stalls of 5 s); every other row's clients get a 30 s read
timeout, so that a loaded machine cannot turn a slow answer into an unexpected timeout.

Checked per row: the outcome's exact class (or a correct result), where a stream raised it, the
attempts the client made (one recorded sleep per retry) and the requests the server received
(``server.requests`` to the embeddings path, with their retry-count headers and one
idempotency key shared by every attempt),
each wait against its bounds, and the time spent against the row's bound.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from aligneai import AligneAI, AsyncAligneAI, CreateEmbeddingResponse, Timeout
from aligneai.testing import LocalServer, embed
from aligneai.transports.aiohttp_transport import AiohttpTransport
from aligneai.transports.urllib3_transport import Urllib3Transport, default_ssl_context


def _load_matrix() -> Any:
    # tests/ is not a package and the suite runs with --import-mode=importlib: load the matrix
    # module from its file (once per process, shared by the modules that need it).
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

API_KEY = "sk-fault-matrix"
PATH = "/v1/embeddings"
TEXTS = ["hello world", "the fault matrix"]
DIMS = 8
# Real time allowed on top of a row's read timeouts: loopback I/O, connection set-up, threads,
# on a loaded machine. A client that missed a read timeout would wait out a 5 s stall instead.
OVERHEAD = 3.0
# The guide that holds the reliability table (README.md links to it).
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "errors-and-retries.md"
START_MARKER = "<!-- reliability-table:start -->"
END_MARKER = "<!-- reliability-table:end -->"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    # One verifying context for every client (building one costs tens of milliseconds); the
    # transports get trust_env=False, so no proxy from the environment gets in the way.
    return default_ssl_context()


def _closed_port() -> int:
    """A loopback port that was bound and closed again: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@dataclass
class Observed:
    """What one call did."""

    result: Any = None
    error: BaseException | None = None
    during_iteration: bool = False
    sleeps: list[float] = field(default_factory=list)
    elapsed: float = 0.0


def _call_sync(
    row: Any, base_url: str, context: ssl.SSLContext, on_sleep: Callable[[], None]
) -> Observed:
    seen = Observed()

    def sleep(seconds: float) -> None:
        seen.sleeps.append(seconds)
        on_sleep()

    transport = Urllib3Transport(ssl_context=context, trust_env=False)
    client = AligneAI(
        api_key=API_KEY,
        base_url=base_url,
        timeout=Timeout(read=row.read_timeout),
        max_retries=fm.MAX_RETRIES,
        transport=transport,
        _sleep=sleep,
    )
    start = time.monotonic()
    try:
        if row.mode == "plain":
            seen.result = client.embeddings.create(inputs=TEXTS, dimensions=DIMS)
        else:
            stream = client.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True)
            seen.during_iteration = True
            with stream:
                seen.result = stream.get_final_response()
    except Exception as exc:
        seen.error = exc
    finally:
        seen.elapsed = time.monotonic() - start
        transport.close()
    return seen


def _call_async(
    row: Any, base_url: str, context: ssl.SSLContext, on_sleep: Callable[[], None]
) -> Observed:
    seen = Observed()

    async def sleep(seconds: float) -> None:
        seen.sleeps.append(seconds)
        on_sleep()

    async def run() -> None:
        transport = AiohttpTransport(ssl_context=context, trust_env=False)
        client = AsyncAligneAI(
            api_key=API_KEY,
            base_url=base_url,
            timeout=Timeout(read=row.read_timeout),
            max_retries=fm.MAX_RETRIES,
            transport=transport,
            _sleep=sleep,
        )
        start = time.monotonic()
        try:
            if row.mode == "plain":
                seen.result = await client.embeddings.create(inputs=TEXTS, dimensions=DIMS)
            else:
                stream = await client.embeddings.create(inputs=TEXTS, dimensions=DIMS, stream=True)
                seen.during_iteration = True
                async with stream:
                    seen.result = await stream.get_final_response()
        except Exception as exc:
            seen.error = exc
        finally:
            seen.elapsed = time.monotonic() - start
            await transport.aclose()

    asyncio.run(run())
    return seen


def _check_result(result: Any) -> None:
    assert isinstance(result, CreateEmbeddingResponse), result
    assert [item.index for item in result.data] == list(range(len(TEXTS)))
    for item, text in zip(result.data, TEXTS):
        expected = embed(text, DIMS)
        assert len(item.embedding) == DIMS
        assert all(abs(a - b) <= 1e-6 for a, b in zip(item.embedding, expected)), text


def _nothing() -> None:
    pass


def _start_once(late_server: LocalServer) -> Callable[[], None]:
    started: list[bool] = []

    def start() -> None:
        if not started:
            started.append(True)
            late_server.start()

    return start


@pytest.mark.parametrize("row", fm.MATRIX, ids=lambda row: row.id)
def test_fault_matrix_row(row: Any, server: LocalServer, ssl_context: ssl.SSLContext) -> None:
    server.reset()
    observed_server = server
    late_server: LocalServer | None = None
    on_sleep: Callable[[], None] = _nothing
    if row.case.make is None:
        # Connection refused: nothing listens on the port. For "once", the first retry sleep
        # starts a server there, so that the retry finds it.
        port = _closed_port()
        base_url = f"http://127.0.0.1:{port}/v1"
        late_server = observed_server = LocalServer(port=port)
        if row.variant == "once":
            on_sleep = _start_once(late_server)
    else:
        base_url = server.url
        fault = row.case.make()
        if row.variant == "persistent":
            server.set_fault_rate(fault, 1.0)
        else:
            server.enqueue(fault)

    try:
        call = _call_sync if row.client == "sync" else _call_async
        seen = call(row, base_url, ssl_context, on_sleep)
        received = [r for r in observed_server.requests if r.path == PATH]
    finally:
        if late_server is not None:
            late_server.stop()

    # The outcome: the documented exception class exactly, or a correct result.
    if row.outcome is CreateEmbeddingResponse:
        assert seen.error is None, f"expected a result, got {seen.error!r}"
        _check_result(seen.result)
    else:
        assert type(seen.error) is row.outcome, (
            f"expected {row.outcome.__name__}, got {seen.error!r}"
            + ("" if seen.error is not None else f" (result {seen.result!r})")
        )
        if row.during_iteration is not None:
            where = "while iterating" if seen.during_iteration else "from create()"
            assert seen.during_iteration is row.during_iteration, f"raised {where}"

    # Attempts: the client sleeps once before each retry; the server counts what reached it.
    assert len(seen.sleeps) == row.attempts - 1, seen.sleeps
    assert len(received) == row.server_sees
    retry_counts = [r.headers.get("x-aligneai-retry-count") for r in received]
    first = row.attempts - row.server_sees
    assert retry_counts == [str(n) for n in range(first, row.attempts)]
    # One idempotency key, sent with every attempt that reached the server (absent is a failure).
    keys = [r.headers.get("idempotency-key") for r in received]
    assert all(keys), keys
    assert len(set(keys)) <= 1, keys

    # Waits and time: each sleep within its bounds, the whole call within the row's bound.
    for (low, high), slept in zip(row.waits, seen.sleeps):
        assert low - 1e-9 <= slept <= high + 1e-9, (row.waits, seen.sleeps)
    assert sum(seen.sleeps) <= row.max_sleep + 1e-9
    timeouts = row.read_timeouts * row.read_timeout
    assert seen.elapsed >= 0.9 * timeouts, f"{seen.elapsed:.3f} s: fewer read timeouts?"
    assert seen.elapsed <= timeouts + OVERHEAD, f"{seen.elapsed:.3f} s of real time"
    assert sum(seen.sleeps) + seen.elapsed <= row.time_bound + OVERHEAD


def test_matrix_is_complete() -> None:
    """Each fault has a row per client, per kind of call it applies to, and per variant."""
    keys = {(row.fault, row.client, row.mode, row.variant) for row in fm.MATRIX}
    assert len(keys) == len(fm.MATRIX), "duplicate rows"
    for case in fm.FAULTS:
        for client in ("sync", "async"):
            for mode in ("plain", "stream"):
                persistent = (case.key, client, mode, "persistent") in keys
                assert persistent is (mode in case.modes), (case.key, client, mode)
        once_modes = {
            mode for (key, _, mode, variant) in keys if key == case.key and variant == "once"
        }
        if not case.retryable:
            assert not once_modes, case.key
        else:
            assert once_modes, f"{case.key}: a retryable fault needs a 'once, then OK' row"
    for row in fm.MATRIX:
        retried = row.attempts > 1 and row.variant == "persistent"
        assert len(row.waits) == row.attempts - 1
        assert not retried or row.attempts == fm.MAX_RETRIES + 1


def test_guide_matches_matrix() -> None:
    """The guide's "Reliability" table is the rendered matrix (paste README_table.md there)."""
    text = GUIDE.read_text(encoding="utf-8")
    assert START_MARKER in text and END_MARKER in text, (
        f"docs/errors-and-retries.md needs the reliability table between {START_MARKER} and "
        f"{END_MARKER}: paste tests/reliability/README_table.md"
    )
    table = text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert table.strip() == fm.render_markdown_table().strip()


def test_readme_table_file_matches_matrix() -> None:
    """README_table.md (the section to paste into the guide) is the rendered matrix too."""
    text = (Path(__file__).with_name("README_table.md")).read_text(encoding="utf-8")
    assert START_MARKER in text and END_MARKER in text
    table = text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert table.strip() == fm.render_markdown_table().strip()
