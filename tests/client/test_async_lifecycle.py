"""Lifecycle of the asyncio client: event loops, garbage collection, ``async with``,
cancellation, heavy concurrency, the connection limit, and the optional aiohttp dependency.

Every warning is an error here, and subprocess runs must leave stderr clean: no "Unclosed
client session", no "Event loop is closed", no ResourceWarning.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import web
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response as WsgiResponse

from aligneai import AsyncAligneAI, CreateEmbeddingResponse, InternalServerError

pytestmark = pytest.mark.filterwarnings("error")

KEY = "sk-test-async"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
BAD_STDERR = ("Unclosed", "Event loop is closed", "ResourceWarning", "Traceback", "Exception")


# -- the embeddings the test servers compute from each input ---------------------------------------


def vector_for(text: str) -> list[float]:
    """The embedding the test servers return for ``text`` (small ints: exact in float32)."""
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


def check_embeds(response: CreateEmbeddingResponse, inputs: list[str]) -> None:
    assert isinstance(response, CreateEmbeddingResponse)
    assert [item.embedding for item in response.data] == [vector_for(t) for t in inputs]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIGNEAI_API_KEY", "ALIGNEAI_BASE_URL", "ALIGNEAI_LOG"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


# -- an aiohttp.web server in the test's own loop --------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` at POST /v1/embeddings on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_post("/v1/embeddings", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()


async def echo_embeddings(request: web.Request) -> web.Response:
    return web.json_response(embeddings_body(await request.json()))


def connector_of(client: AsyncAligneAI) -> Any:
    session = client._transport.session  # type: ignore[attr-defined]
    assert session is not None
    return session.connector


def assert_no_connection_in_use(client: AsyncAligneAI) -> None:
    acquired = getattr(connector_of(client), "_acquired", None)
    if acquired is not None:  # aiohttp's private bookkeeping, checked when it exists
        assert len(acquired) == 0


# -- a pytest-httpserver for the subprocess runs ---------------------------------------------------


def embeddings_handler(request: WsgiRequest) -> WsgiResponse:
    body = embeddings_body(json.loads(request.get_data()))
    return WsgiResponse(json.dumps(body), status=200, content_type="application/json")


@pytest.fixture(scope="module")
def _server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(_server: HTTPServer) -> Iterator[HTTPServer]:
    _server.clear()
    _server.expect_request("/v1/embeddings", method="POST").respond_with_handler(embeddings_handler)
    yield _server
    _server.clear()


def run_python(
    code: str, tmp_path: Path, *args: str, flags: tuple[str, ...] = ("-W", "error")
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports the same package as this one."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith(("ALIGNEAI_", "PYTHONASYNCIO"))}
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    for marker in BAD_STDERR:
        assert marker not in result.stderr, result.stderr
    assert result.stderr.strip() == ""


# -- event loops and garbage collection (subprocesses) ---------------------------------------------


def test_module_level_client_across_two_asyncio_runs(server: HTTPServer, tmp_path: Path) -> None:
    code = """
        import asyncio, gc, json, sys
        import aligneai

        client = aligneai.AsyncAligneAI(api_key="sk-test", base_url=sys.argv[1], max_retries=0)

        async def embed(text):
            response = await client.embeddings.create(inputs=[text])
            return response.data[0].embedding

        first = asyncio.run(embed("first run"))
        second = asyncio.run(embed("second run"))
        print(json.dumps([first, second]))
        del client
        gc.collect()
    """
    result = run_python(code, tmp_path, server.url_for("/v1"))
    assert_clean(result)
    assert json.loads(result.stdout) == [vector_for("first run"), vector_for("second run")]
    assert len(server.log) == 2


GC_SCENARIOS = {
    "collected-inside-the-loop": """
        import asyncio, gc, sys
        import aligneai

        async def main():
            client = aligneai.AsyncAligneAI(api_key="sk-test", base_url=sys.argv[1])
            response = await client.embeddings.create(inputs=["collected inside"])
            assert len(response.data) == 1
            del client, response
            gc.collect()
            for _ in range(10):  # let the loop close the session of the collected client
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)

        asyncio.run(main())
        gc.collect()
        print("done")
    """,
    "collected-after-the-loop": """
        import asyncio, gc, sys
        import aligneai

        async def use():
            client = aligneai.AsyncAligneAI(api_key="sk-test", base_url=sys.argv[1])
            response = await client.embeddings.create(inputs=["collected after"])
            assert len(response.data) == 1
            return client

        client = asyncio.run(use())
        del client
        gc.collect()
        print("done")
    """,
}


@pytest.mark.parametrize("scenario", sorted(GC_SCENARIOS))
def test_client_garbage_collected_without_close(
    scenario: str, server: HTTPServer, tmp_path: Path
) -> None:
    result = run_python(GC_SCENARIOS[scenario], tmp_path, server.url_for("/v1"))
    assert_clean(result)
    assert result.stdout.strip() == "done"
    assert len(server.log) == 1


# -- async with ------------------------------------------------------------------------------------


def test_async_with_closes_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with serve(echo_embeddings) as url:
            monkeypatch.setenv("ALIGNEAI_API_KEY", KEY)
            monkeypatch.setenv("ALIGNEAI_BASE_URL", url)
            async with AsyncAligneAI() as client:
                assert isinstance(client, AsyncAligneAI)
                check_embeds(await client.embeddings.create(inputs=["with"]), ["with"])
                session = client._transport.session  # type: ignore[attr-defined]
                assert session is not None and not session.closed
            assert session.closed
            await client.close()  # idempotent

    asyncio.run(main())


# -- cancellation ----------------------------------------------------------------------------------


class SlowServer:
    """Answers "fast" at once; for "slow" stalls before the head ("head") or mid-body
    ("body") until released; always 503 for "busy"."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.hits: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        text = payload["inputs"][0]
        self.hits[text] = self.hits.get(text, 0) + 1
        if text == "slow head":
            self.entered.set()
            await self.release.wait()
        elif text == "slow body":
            response = web.StreamResponse(
                headers={"Content-Type": "application/json", "Content-Length": "1000"}
            )
            await response.prepare(request)
            await response.write(b'{"object": "list", ')
            self.entered.set()
            await self.release.wait()
            return response
        elif text == "busy":
            return web.json_response({"error": {"message": "busy"}}, status=503)
        return web.json_response(embeddings_body(payload))


@pytest.mark.parametrize("stall", ["head", "body"])
def test_cancelling_a_call_raises_cancelled_error_and_frees_the_connection(stall: str) -> None:
    async def main() -> None:
        slow = SlowServer()
        async with serve(slow.handle) as url:
            try:
                async with AsyncAligneAI(api_key=KEY, base_url=url, max_retries=0) as client:
                    check_embeds(await client.embeddings.create(inputs=["fast"]), ["fast"])
                    task = asyncio.create_task(client.embeddings.create(inputs=[f"slow {stall}"]))
                    await asyncio.wait_for(slow.entered.wait(), 5)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    assert task.cancelled()
                    assert_no_connection_in_use(client)
                    check_embeds(await client.embeddings.create(inputs=["next"]), ["next"])
                    assert_no_connection_in_use(client)
            finally:
                slow.release.set()

    asyncio.run(main())


def test_a_retry_sleep_is_cancellable() -> None:
    async def main() -> None:
        slow = SlowServer()
        sleeping = asyncio.Event()
        sleeps: list[float] = []

        async def long_sleep(seconds: float) -> None:
            sleeps.append(seconds)
            sleeping.set()
            await asyncio.sleep(3600)

        async with serve(slow.handle) as url:
            client = AsyncAligneAI(api_key=KEY, base_url=url, max_retries=2, _sleep=long_sleep)
            async with client:
                task = asyncio.create_task(client.embeddings.create(inputs=["busy"]))
                await asyncio.wait_for(sleeping.wait(), 5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert len(sleeps) == 1
                assert slow.hits == {"busy": 1}
                assert_no_connection_in_use(client)
                check_embeds(await client.embeddings.create(inputs=["after"]), ["after"])

                # The same sleep, not cancelled, ends in the status error after the retries.
                async def no_sleep(seconds: float) -> None:
                    sleeps.append(seconds)

                quick = AsyncAligneAI(api_key=KEY, base_url=url, max_retries=2, _sleep=no_sleep)
                async with quick:
                    with pytest.raises(InternalServerError):
                        await quick.embeddings.create(inputs=["busy"])
                assert len(sleeps) == 3
                assert slow.hits["busy"] == 4

    asyncio.run(main())


# -- concurrency and the connection limit ----------------------------------------------------------


def test_a_thousand_concurrent_tasks_on_one_client() -> None:
    async def main() -> None:
        async with serve(echo_embeddings) as url:
            client = AsyncAligneAI(api_key=KEY, base_url=url, max_retries=0)
            async with client:
                inputs = [[f"task {i}"] for i in range(1000)]
                responses = await asyncio.gather(
                    *(client.embeddings.create(inputs=texts) for texts in inputs)
                )
                for response, texts in zip(responses, inputs):
                    check_embeds(response, texts)
                assert_no_connection_in_use(client)

    asyncio.run(main())


def test_max_connections_limits_concurrent_connections() -> None:
    async def main() -> None:
        state = {"now": 0, "peak": 0}
        peers: set[Any] = set()

        async def counting(request: web.Request) -> web.Response:
            peers.add(request.transport.get_extra_info("peername") if request.transport else None)
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            try:
                await asyncio.sleep(0.02)
                return web.json_response(embeddings_body(await request.json()))
            finally:
                state["now"] -= 1

        async with serve(counting) as url:
            client = AsyncAligneAI(api_key=KEY, base_url=url, max_connections=3, max_retries=0)
            async with client:
                texts = [f"limited {i}" for i in range(24)]
                responses = await asyncio.gather(
                    *(client.embeddings.create(inputs=[t]) for t in texts)
                )
                for response, text in zip(responses, texts):
                    check_embeds(response, [text])
        assert state["peak"] == 3
        assert len(peers) <= 3

    asyncio.run(main())


# -- the optional dependency and import cost (subprocesses) ----------------------------------------


def test_without_aiohttp_the_async_client_names_the_extra(tmp_path: Path) -> None:
    code = """
        import sys
        from importlib.abc import MetaPathFinder

        class NoAiohttp(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "aiohttp" or name.startswith("aiohttp."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NoAiohttp())
        import aligneai
        from aligneai import AsyncAligneAI, MissingDependencyError

        try:
            AsyncAligneAI(api_key="sk-test")
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            print("no error")
        assert "aiohttp" not in sys.modules
        aligneai.AligneAI(api_key="sk-test").close()  # the sync client does not need it
    """
    result = run_python(code, tmp_path)
    assert_clean(result)
    assert 'pip install "aligneai[aiohttp]"' in result.stdout


def test_import_aligneai_imports_neither_asyncio_nor_aiohttp(tmp_path: Path) -> None:
    code = """
        import json, sys
        before = set(sys.modules)
        import aligneai
        after_import = set(sys.modules)
        aligneai.AligneAI(api_key="sk-test").close()
        after_client = set(sys.modules)
        print(json.dumps({
            "preloaded": sorted(m for m in before if m.split(".")[0] in ("asyncio", "aiohttp")),
            "import": sorted(after_import - before),
            "client": sorted(after_client - before),
        }))
    """
    result = run_python(code, tmp_path, flags=("-W", "error", "-X", "importtime"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["preloaded"] == []  # else this check would prove nothing
    assert "aligneai" in report["import"]
    for phase in ("import", "client"):
        loaded = {m.split(".")[0] for m in report[phase]}
        assert "asyncio" not in loaded, phase
        assert "aiohttp" not in loaded, phase

    # -X importtime lists every module imported, one line each, on stderr.
    lines = result.stderr.splitlines()
    assert all(line.startswith("import time:") for line in lines), result.stderr
    names = [line.rsplit("|", 1)[1].strip() for line in lines[1:]]
    assert "aligneai" in names
    assert not [n for n in names if n.split(".")[0] in ("asyncio", "aiohttp")]
