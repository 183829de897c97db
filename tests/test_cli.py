"""The ``aligneai`` command line: ``aligneai.cli.main`` in-process, and the real entry points.

Most tests call ``main(argv, stdin=, stdout=, stderr=)`` against a `LocalServer` (or with
``--local``) and check the exit code and both streams; two run ``python -m aligneai`` in a
subprocess (``embed --local`` and ``serve`` stopped with SIGTERM).
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aligneai.cli import main
from aligneai.testing import Fault, LocalServer, embed

KEY = "sk-test-SECRET-7f3a9c"  # must never be echoed to stderr
TRACEBACK = "Traceback (most recent call last)"


class Result:
    def __init__(self, code: int, out: str, err: str, raw: bytes = b"") -> None:
        self.code, self.out, self.err, self.raw = code, out, err, raw

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(argv: list[str], stdin: str | io.StringIO = "", binary: bool = False) -> Result:
    """Run ``main`` with in-memory streams; argparse's SystemExit counts as its exit code."""
    stdout: io.TextIOBase
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8") if binary else io.StringIO()
    stderr = io.StringIO()
    stdin_stream = io.StringIO(stdin) if isinstance(stdin, str) else stdin
    try:
        code = main(argv, stdin=stdin_stream, stdout=stdout, stderr=stderr)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    if binary:
        assert isinstance(stdout, io.TextIOWrapper)
        stdout.flush()
        raw = stdout.buffer.getvalue()
        return Result(code, "", stderr.getvalue(), raw)
    assert isinstance(stdout, io.StringIO)
    return Result(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key or base URL from the environment; undo what ``--debug`` does to logging."""
    monkeypatch.delenv("ALIGNEAI_API_KEY", raising=False)
    monkeypatch.delenv("ALIGNEAI_BASE_URL", raising=False)
    logger, root = logging.getLogger("aligneai"), logging.getLogger()
    level, root_handlers = logger.level, list(root.handlers)
    yield
    logger.setLevel(level)
    root.handlers[:] = root_handlers


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture
def srv(server: LocalServer) -> LocalServer:
    server.reset()
    return server


def remote(server: LocalServer, *argv: str) -> list[str]:
    """``argv`` for ``embed``/``models`` against ``server`` with ``--api-key KEY``."""
    command, rest = argv[0], list(argv[1:])
    return [command, "--base-url", server.url, "--api-key", KEY, *rest]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_one_error_line(result: Result, kind: str) -> None:
    assert result.out == ""
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith(f"aligneai: error: {kind}"), result.err
    assert TRACEBACK not in result.err


# -- embed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["remote", "local"])
def test_embed_json_defaults(srv: LocalServer, mode: str) -> None:
    texts = ["hello world", "the coffee is strong", "café ☕"]
    argv = remote(srv, "embed", *texts) if mode == "remote" else ["embed", "--local", *texts]
    result = run(argv)
    assert result.code == 0, result.err
    assert result.err == ""
    body = json.loads(result.out)
    assert body["object"] == "list"
    assert body["model"] == "aligne-embed-small"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    for item, text in zip(body["data"], texts):
        assert len(item["embedding"]) == 384
        assert item["embedding"] == pytest.approx(embed(text, 384), abs=1e-6)
    assert body["usage"]["total_tokens"] > 0
    if mode == "remote":
        assert len(srv.requests) == 1
        request = srv.requests[0]
        assert request.path == "/v1/embeddings"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.json["inputs"] == texts
    else:
        assert srv.requests == []  # --local never touches another server


@pytest.mark.parametrize(
    ("options", "model", "dims"),
    [
        (["--dimensions", "64"], "aligne-embed-small", 64),
        (["--model", "aligne-embed-large"], "aligne-embed-large", 1536),
        (["--model", "aligne-embed-large", "--dimensions", "100"], "aligne-embed-large", 100),
    ],
)
def test_embed_model_and_dimensions(
    srv: LocalServer, options: list[str], model: str, dims: int
) -> None:
    result = run(remote(srv, "embed", *options, "a", "b"))
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["model"] == model
    assert [len(item["embedding"]) for item in body["data"]] == [dims, dims]
    assert body["data"][0]["embedding"] == pytest.approx(embed("a", dims), abs=1e-6)


def test_embed_local_options() -> None:
    result = run(["embed", "--local", "--model", "aligne-embed-large", "--dimensions", "64", "x"])
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["model"] == "aligne-embed-large"
    assert len(body["data"][0]["embedding"]) == 64


def test_embed_jsonl(srv: LocalServer) -> None:
    texts = ["one", "two", "three"]
    result = run(remote(srv, "embed", "--format", "jsonl", "--dimensions", "32", *texts))
    assert result.code == 0, result.err
    assert result.out.endswith("\n")
    lines = result.out.splitlines()
    assert len(lines) == len(texts)
    for index, (line, text) in enumerate(zip(lines, texts)):
        item = json.loads(line)
        assert set(item) == {"index", "embedding"}
        assert item["index"] == index
        assert item["embedding"] == pytest.approx(embed(text, 32), abs=1e-6)


@pytest.mark.parametrize("mode", ["remote", "local"])
def test_embed_npy(srv: LocalServer, mode: str) -> None:
    import numpy

    texts = ["alpha", "beta", "gamma", "delta"]
    argv = ["embed", "--format", "npy", "--dimensions", "48", *texts]
    argv = remote(srv, *argv) if mode == "remote" else [*argv, "--local"]
    result = run(argv, binary=True)
    assert result.code == 0, result.err
    assert result.raw.startswith(b"\x93NUMPY")
    matrix = numpy.load(io.BytesIO(result.raw))
    assert matrix.shape == (4, 48)
    for row, text in zip(matrix, texts):
        assert row.tolist() == pytest.approx(embed(text, 48), abs=1e-6)


def test_embed_stdin_one_text_per_line(srv: LocalServer) -> None:
    # Each line is one text, verbatim but for its ending (LF or CRLF): index i is line i + 1.
    stdin = "first line\n   \nsecond line\r\nthird, with ünïcode"
    result = run(remote(srv, "embed", "--stdin", "--format", "jsonl"), stdin=stdin)
    assert result.code == 0, result.err
    inputs = ["first line", "   ", "second line", "third, with ünïcode"]
    assert srv.requests[-1].json["inputs"] == inputs
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    for line, text in zip(lines, inputs):
        assert line["embedding"] == pytest.approx(embed(text, 384), abs=1e-6)


def test_embed_stdin_after_positional_texts(srv: LocalServer) -> None:
    result = run(remote(srv, "embed", "--stdin", "given"), stdin="piped\n")
    assert result.code == 0, result.err
    assert srv.requests[-1].json["inputs"] == ["given", "piped"]
    assert len(json.loads(result.out)["data"]) == 2


def test_embed_uses_environment_key_and_base_url(
    srv: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNEAI_API_KEY", "env-key")
    monkeypatch.setenv("ALIGNEAI_BASE_URL", srv.url)
    result = run(["embed", "x"])
    assert result.code == 0, result.err
    assert srv.requests[-1].headers["authorization"] == "Bearer env-key"


# -- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["remote", "local"])
def test_models_list(srv: LocalServer, mode: str) -> None:
    result = run(remote(srv, "models") if mode == "remote" else ["models", "--local"])
    assert result.code == 0, result.err
    assert result.err == ""
    body = json.loads(result.out)
    assert body["object"] == "list"
    dims = {model["id"]: model["dimensions"] for model in body["data"]}
    assert dims == {"aligne-embed-small": 384, "aligne-embed-large": 1536}


def test_models_retrieve(srv: LocalServer) -> None:
    result = run(remote(srv, "models", "aligne-embed-large"))
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["id"] == "aligne-embed-large"
    assert body["object"] == "model"
    assert body["dimensions"] == 1536
    assert srv.requests[-1].path == "/v1/models/aligne-embed-large"


@pytest.mark.parametrize("mode", ["remote", "local"])
def test_models_unknown_id_is_one_line_exit_1(srv: LocalServer, mode: str) -> None:
    local = ["models", "--local", "no-such-model"]
    argv = remote(srv, "models", "no-such-model") if mode == "remote" else local
    result = run(argv)
    assert result.code == 1
    assert_one_error_line(result, "NotFoundError")
    assert "no-such-model" in result.err


# -- errors and exit codes ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["embed", "x"], ["models"]])
def test_missing_key_exits_2(srv: LocalServer, command: list[str]) -> None:
    result = run([command[0], "--base-url", srv.url, *command[1:]])
    assert result.code == 2
    assert_one_error_line(result, "MissingAPIKeyError")
    assert "ALIGNEAI_API_KEY" in result.err
    assert srv.requests == []


def test_local_needs_no_key() -> None:
    assert "ALIGNEAI_API_KEY" not in os.environ
    assert run(["embed", "--local", "x"]).code == 0


def test_connection_refused_exits_1() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run(["embed", "--base-url", url, "--api-key", KEY, "--max-retries", "0", "x"])
    assert result.code == 1
    assert_one_error_line(result, "APIConnectionError")
    assert KEY not in result.err


def test_503_without_retries_exits_1(srv: LocalServer) -> None:
    srv.enqueue(Fault.status(503))
    result = run(remote(srv, "embed", "--max-retries", "0", "x"))
    assert result.code == 1
    assert_one_error_line(result, "InternalServerError")
    assert "503" in result.err
    assert len(srv.requests) == 1


def test_max_retries_is_passed_to_the_client(srv: LocalServer) -> None:
    srv.enqueue(Fault.status(503, retry_after_ms=1), Fault.none())
    result = run(remote(srv, "embed", "--max-retries", "1", "x"))
    assert result.code == 0, result.err
    assert len(json.loads(result.out)["data"]) == 1
    assert len(srv.requests) == 2


def test_timeout_is_passed_to_the_client(srv: LocalServer) -> None:
    srv.enqueue(Fault.delay(5))
    started = time.monotonic()
    result = run(remote(srv, "embed", "--timeout", "0.2", "--max-retries", "0", "x"))
    assert time.monotonic() - started < 3
    assert result.code == 1
    assert_one_error_line(result, "APITimeoutError")


def test_wrong_key_exits_1_without_echoing_it() -> None:
    with LocalServer(api_key="the-right-key") as strict:
        result = run(remote(strict, "embed", "x"))
    assert result.code == 1
    assert_one_error_line(result, "AuthenticationError")
    assert KEY not in result.err


def test_debug_shows_traceback(srv: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(remote(srv, "models", "--debug", "no-such-model"))
    assert result.code == 1
    assert TRACEBACK in result.err
    assert result.err_lines[-1].startswith("aligneai: error: NotFoundError")
    assert KEY not in result.err
    assert KEY not in capsys.readouterr().err  # debug log records go to sys.stderr


def test_debug_with_wrong_key_never_shows_it(capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer(api_key="the-right-key") as strict:
        strict.enqueue(Fault.status(503, retry_after_ms=1))
        result = run(remote(strict, "embed", "--debug", "--max-retries", "1", "x"))
    assert result.code == 1
    assert TRACEBACK in result.err
    assert "AuthenticationError" in result.err_lines[-1]
    assert KEY not in result.err
    assert KEY not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (["embed", "--local"], ""),
        (["embed", "--local", "--stdin"], ""),
    ],
)
def test_no_texts_exits_2(argv: list[str], stdin: str) -> None:
    result = run(argv, stdin=stdin)
    assert result.code == 2
    assert_one_error_line(result, "InvalidArgumentValueError: TEXT: give texts")


@pytest.mark.parametrize(
    "options",
    [
        ["--dimensions", "0"],
        ["--max-retries", "-1"],
        ["--timeout", "0"],
        ["--timeout", "nan"],
        ["--model", ""],
    ],
)
def test_invalid_option_values_exit_2(srv: LocalServer, options: list[str]) -> None:
    result = run(remote(srv, "embed", *options, "x"))
    assert result.code == 2
    # The option as the user typed it, not the library's argument name.
    assert_one_error_line(result, f"InvalidArgumentValueError: {options[0]}: ")
    assert srv.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["embed", "--format", "xml", "x"],
        ["embed", "--dimensions", "many", "x"],
        ["embed", "--no-such-flag", "x"],
        ["serve", "--port", "eighty"],
        ["models", "a", "b"],
    ],
)
def test_argparse_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    result = run(argv)
    assert result.code == 2
    assert_one_error_line(result, "UsageError: ")
    assert "--help' " not in result.err
    assert result.err.rstrip().endswith("--help')")
    assert capsys.readouterr() == ("", "")  # nothing bypassed the streams given to main


def test_ctrl_c_exits_130() -> None:
    class Interrupting(io.StringIO):
        # Ctrl-C while reading the piped texts (typeshed types _IOBase.__next__ as bytes).
        def __next__(self) -> str:  # type: ignore[override]
            raise KeyboardInterrupt

    result = run(["embed", "--local", "--stdin"], stdin=Interrupting())
    assert result.code == 130
    assert result.out == ""
    assert result.err_lines == ["aligneai: interrupted"]


# -- the real entry points ------------------------------------------------------------------


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env  # PYTHONPATH (if any) passes through


def test_python_m_aligneai_embed_local(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "aligneai", "embed", "--local", "hello world"],
        cwd=tmp_path,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    body = json.loads(completed.stdout)
    assert len(body["data"]) == 1
    assert body["data"][0]["embedding"] == pytest.approx(embed("hello world", 384), abs=1e-6)


def test_python_m_aligneai_serve_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aligneai", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=_subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stderr_chunks: list[str] = []

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    def pump_stderr() -> None:  # the access log must not fill the pipe
        assert process.stderr is not None
        stderr_chunks.append(process.stderr.read())

    threads = [threading.Thread(target=f, daemon=True) for f in (pump_stdout, pump_stderr)]
    for thread in threads:
        thread.start()
    try:
        first = lines.get(timeout=20)
        url = f"http://127.0.0.1:{port}/v1"
        assert first.strip() == f"AligneAI local server listening on {url}"

        request = urllib.request.Request(
            f"{url}/models", headers={"Authorization": "Bearer any-key"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            models = json.loads(response.read())
        assert {model["id"] for model in models["data"]} == {
            "aligne-embed-small",
            "aligne-embed-large",
        }
        with pytest.raises(urllib.error.HTTPError) as unauthorized:
            urllib.request.urlopen(f"{url}/models", timeout=10)
        unauthorized.value.close()
        assert unauthorized.value.code == 401

        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for thread in threads:
            thread.join(5)
        for pipe in (process.stdout, process.stderr):
            assert pipe is not None
            pipe.close()
    # ``serve`` handles SIGTERM like Ctrl-C: it stops the server and exits normally.
    assert code == 0, "".join(stderr_chunks)
    rest: list[str] = []
    while not lines.empty():
        rest.append(lines.get())
    assert rest[-1].strip() == "AligneAI local server stopped."
    assert TRACEBACK not in "".join(stderr_chunks)
