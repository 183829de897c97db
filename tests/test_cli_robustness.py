"""The command line never shows a traceback (without ``--debug``): every failure is one line.

Issue #12 items 7 and 8, and their class: bytes that are not UTF-8 (stdin, argv), a reader that
goes away or a disk that is full, a server that cannot listen, Ctrl-C at any point, a server that
errors, and blank lines that used to be dropped (shifting every later ``index``). The real
console script runs in subprocesses (cwd outside the repository); the rest runs in-process.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligneai.cli import main
from aligneai.testing import Fault, LocalServer, embed

KEY = "sk-test-SECRET-c1d9e4"
TRACEBACK = "Traceback (most recent call last)"


class Result:
    def __init__(self, code: int, out: bytes, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


def run(argv: list[str], stdin: bytes | str = b"") -> Result:
    """Run ``main`` in-process; bytes stdin goes through a real binary buffer, like a pipe."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    stdin_stream: Any
    if isinstance(stdin, bytes):
        stdin_stream = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    else:
        stdin_stream = io.StringIO(stdin)
    code = main(argv, stdin=stdin_stream, stdout=stdout, stderr=stderr)
    stdout.flush()
    raw = stdout.buffer.getvalue()  # type: ignore[attr-defined]
    return Result(code, raw, stderr.getvalue())


def assert_one_error_line(result: Result, code: int, start: str) -> None:
    assert result.code == code, result.err
    assert result.out == b""
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith(f"aligneai: error: {start}"), result.err
    assert TRACEBACK not in result.err


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIGNEAI_API_KEY", raising=False)
    monkeypatch.delenv("ALIGNEAI_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture
def srv(server: LocalServer) -> LocalServer:
    server.reset()
    return server


def remote(server: LocalServer, *argv: str) -> list[str]:
    return [argv[0], "--base-url", server.url, "--api-key", KEY, *argv[1:]]


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


# -- stdin: one text per line, line numbers kept ------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"ok\nbad \xff here\n", "line 2 is not valid UTF-8 (byte 0xff at byte 5)"),
        (b"\xc3\x28\n", "line 1 is not valid UTF-8 (byte 0xc3 at byte 1)"),
        (b"a\nb\nc\xe2\x82\n", "line 3 is not valid UTF-8 (byte 0xe2 at byte 2)"),  # cut char
        # A text layer that decoded with surrogateescape (a C locale) still names the byte.
        ("ok\nbad \udcff here\n", "line 2 is not valid UTF-8 (byte 0xff at character 5)"),
    ],
)
def test_stdin_not_utf8_names_the_line(srv: LocalServer, stdin: bytes | str, message: str) -> None:
    result = run(remote(srv, "embed", "--stdin"), stdin=stdin)
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --stdin: {message}")
    assert srv.requests == []


@pytest.mark.parametrize(
    ("stdin", "line"),
    [
        (b"a\n\nb\n", 2),
        (b"\n", 1),
        (b"a\r\n\r\nb", 2),
        (b"a\nb\n\n", 3),  # a trailing blank line is a line too
        (b"\xef\xbb\xbf\n", 1),  # only a byte order mark: empty
    ],
)
def test_stdin_empty_line_is_refused_with_its_number(
    srv: LocalServer, stdin: bytes, line: int
) -> None:
    result = run(remote(srv, "embed", "--stdin"), stdin=stdin)
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --stdin: line {line} is empty")
    assert srv.requests == []


def test_stdin_index_is_the_line_number_minus_one(srv: LocalServer) -> None:
    # BOM dropped, CRLF and LF endings, a whitespace-only text kept verbatim, no final newline.
    stdin = b"\xef\xbb\xbfzero\r\n one \n\t\ntr\xc3\xa8s"
    result = run(remote(srv, "embed", "--stdin", "--format", "jsonl"), stdin=stdin)
    assert result.code == 0, result.err
    texts = ["zero", " one ", "\t", "très"]
    assert srv.requests[-1].json["inputs"] == texts
    rows = [json.loads(line) for line in result.text.splitlines()]
    assert [row["index"] for row in rows] == [0, 1, 2, 3]
    for row, text in zip(rows, texts):
        assert row["embedding"] == pytest.approx(embed(text, 384), abs=1e-6)


def test_stdin_closed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)  # what Python sets when started with fd 0 closed
    stderr = io.StringIO()
    code = main(["embed", "--local", "--stdin"], stdout=io.StringIO(), stderr=stderr)
    assert code == 2
    assert stderr.getvalue() == (
        "aligneai: error: InvalidArgumentValueError: --stdin: standard input is closed\n"
    )


# -- argv ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # argv bytes that are not UTF-8 reach Python as surrogateescape'd code points.
        (
            ["embed", "ok", "caf\udce9"],
            "TEXT: text 2 is not valid UTF-8 (byte 0xe9 at character 4)",
        ),
        (["embed", "ok", ""], "TEXT: text 2 is empty"),
        (["embed", "--model", "m\udcff", "x"], "--model: is not valid UTF-8"),
        (["models", "m\udcff"], "ID: is not valid UTF-8"),
    ],
)
def test_argv_not_utf8_or_empty_names_the_argument(
    srv: LocalServer, argv: list[str], message: str
) -> None:
    result = run(remote(srv, *argv))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: {message}")
    assert srv.requests == []


def test_api_key_not_utf8_is_named_but_never_echoed(srv: LocalServer) -> None:
    secret = "sk-\udcff-KEY-never-shown"
    result = run(["embed", "--base-url", srv.url, "--api-key", secret, "x"])
    assert_one_error_line(result, 2, "InvalidArgumentValueError: --api-key: is not valid UTF-8")
    assert "never-shown" not in result.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", KEY, "embed", "x"],  # a command's option before the command
        ["embed", f"--api-key={KEY}", "--frobnicate", "x"],
        ["models", "--api-key", KEY, "a", "b"],
    ],
)
def test_usage_errors_never_echo_the_key(argv: list[str]) -> None:
    result = run(argv)
    assert_one_error_line(result, 2, "UsageError: ")
    assert KEY not in result.err


def test_option_abbreviations_are_refused() -> None:
    # An abbreviation would change meaning when a flag with the same prefix is added.
    result = run(["embed", "--local", "--dim", "8", "x"])
    assert_one_error_line(result, 2, "UsageError: unrecognized arguments: --dim")


def test_local_with_base_url_is_refused(srv: LocalServer) -> None:
    result = run(["embed", "--local", "--base-url", srv.url, "x"])
    assert_one_error_line(result, 2, "InvalidArgumentValueError: --base-url: cannot be combined")
    assert srv.requests == []


@pytest.mark.parametrize(
    ("environment", "argv", "start"),
    [
        ({"ALIGNEAI_BASE_URL": "nope"}, ["--api-key", KEY], "InvalidArgumentValueError: "),
        ({"ALIGNEAI_API_KEY": ""}, [], "MissingAPIKeyError: no API key: pass --api-key"),
    ],
)
def test_bad_environment_is_named(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], argv: list[str], start: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = run(["embed", *argv, "x"])
    assert_one_error_line(result, 2, start)
    if "ALIGNEAI_BASE_URL" in environment:
        assert "$ALIGNEAI_BASE_URL: " in result.err


# -- a server that errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.malformed_json(), "APIResponseValidationError"),
        (Fault.truncated_json(), "APIResponseValidationError"),
        (Fault.contract_violation(), "APIResponseValidationError"),
        (Fault.drop_before_headers(), "APIConnectionError"),
        (Fault.html(502), "InternalServerError"),
        (Fault.status(400, body="line one\nline two\n"), "BadRequestError"),
    ],
)
@pytest.mark.parametrize("command", ["embed", "models"])
def test_a_server_that_errors_is_one_line(
    srv: LocalServer, fault: Fault, kind: str, command: str
) -> None:
    srv.enqueue(fault)
    argv = ["embed", "--max-retries", "0", "x"] if command == "embed" else ["models"]
    if command == "models":
        argv.append("--max-retries=0")
    result = run(remote(srv, *argv))
    assert_one_error_line(result, 1, kind)
    assert KEY not in result.err


# -- serve --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("99999", "port must be 0-65535 (0: any free port), got 99999"),
        ("-1", "port must be 0-65535 (0: any free port), got -1"),
        ("eighty", "invalid port: 'eighty'"),
    ],
)
def test_serve_port_out_of_range_is_a_usage_error(port: str, message: str) -> None:
    result = run(["serve", "--port", port])
    assert_one_error_line(result, 2, f"UsageError: argument --port: {message}")


def test_serve_port_in_use_is_one_line() -> None:
    with listening_socket() as busy:
        port = busy.getsockname()[1]
        result = run(["serve", "--port", str(port)])
    assert_one_error_line(result, 1, f"OSError: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.err


def test_serve_address_not_local_is_one_line() -> None:
    # 192.0.2.1 (TEST-NET-1) belongs to no interface here: bind fails at once, nothing is sent.
    result = run(["serve", "--host", "192.0.2.1", "--port", "0"])
    assert_one_error_line(result, 1, "OSError: cannot listen on 192.0.2.1:0: ")


def test_serve_unresolvable_host_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query in tests: make the name lookup inside bind() fail the way it does for real.
    real_bind = socket.socket.bind

    def bind(self: socket.socket, address: Any) -> None:
        if address[0] == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        real_bind(self, address)

    monkeypatch.setattr(socket.socket, "bind", bind)
    result = run(["serve", "--host", "no-such-host.invalid", "--port", "0"])
    assert_one_error_line(
        result,
        1,
        "OSError: cannot listen on no-such-host.invalid:0: Name or service not known",
    )


def test_serve_empty_api_key_is_refused() -> None:
    result = run(["serve", "--api-key", "", "--port", "0"])
    assert_one_error_line(result, 2, "InvalidArgumentValueError: --api-key: must not be empty")


# -- Ctrl-C and unexpected failures, in-process -------------------------------------------------


class _RaisingBytes(io.BytesIO):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def write(self, data: Any) -> int:
        raise self.exc


@pytest.mark.parametrize("where", ["client", "request", "output"])
def test_ctrl_c_anywhere_exits_130(
    srv: LocalServer, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import aligneai

    stdout: Any = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    if where == "client":
        monkeypatch.setattr(aligneai, "AligneAI", _raiser(KeyboardInterrupt()))
    elif where == "request":
        monkeypatch.setattr(
            aligneai.resources.embeddings.Embeddings, "create", _raiser(KeyboardInterrupt())
        )
    else:
        stdout = io.TextIOWrapper(_RaisingBytes(KeyboardInterrupt()), encoding="utf-8")
    stderr = io.StringIO()
    code = main(remote(srv, "embed", "x"), stdin=io.StringIO(), stdout=stdout, stderr=stderr)
    assert code == 130
    assert stderr.getvalue() == "aligneai: interrupted\n"


def _raiser(exc: BaseException) -> Any:
    def raise_(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raise_


def test_unexpected_exception_is_one_line_and_debug_shows_it(
    srv: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aligneai

    monkeypatch.setattr(
        aligneai.resources.embeddings.Embeddings, "create", _raiser(KeyError("boom"))
    )
    result = run(remote(srv, "embed", "x"))
    assert_one_error_line(result, 1, "KeyError: 'boom' (unexpected; --debug shows the traceback)")
    debug = run(remote(srv, "embed", "--debug", "x"))
    assert debug.code == 1
    assert TRACEBACK in debug.err
    assert debug.err_lines[-1].startswith("aligneai: error: KeyError: 'boom'")


def test_plain_http_warning_is_a_prefixed_line(srv: LocalServer) -> None:
    # 127.0.0.2 is loopback but not "localhost" by name: the library warns the key travels in
    # clear; the CLI shows that as one "aligneai: warning:" line, then the error.
    url = srv.url.replace("127.0.0.1", "127.0.0.2")
    result = run(["embed", "--base-url", url, "--api-key", KEY, "--max-retries", "0", "x"])
    lines = result.err_lines
    assert TRACEBACK not in result.err
    assert lines and all(line.startswith("aligneai: ") for line in lines), result.err
    if result.code == 0:  # 127.0.0.2 reachable: a warning and the answer
        assert lines[0].startswith("aligneai: warning: base_url http://127.0.0.2")
    else:
        assert lines[-1].startswith("aligneai: error: APIConnectionError")


# -- the same class, fuzzed ---------------------------------------------------------------------

_OPTION_VALUES: dict[str, Any] = {
    "--model": st.sampled_from(["aligne-embed-small", "aligne-embed-large", "nope", "", "m\udcff"]),
    "--dimensions": st.one_of(st.integers(-5, 2000).map(str), st.sampled_from(["x", "1e3", ""])),
    "--timeout": st.sampled_from(["5", "0", "-1", "nan", "inf", "1e309", "x", ""]),
    "--max-retries": st.sampled_from(["0", "-1", "x", "99999999999999999999"]),
    "--format": st.sampled_from(["json", "jsonl", "npy", "xml", ""]),
    "--api-key": st.sampled_from([KEY, "", "“sk”", "k\udcff"]),
    # Bulk options (the budgets only with values that never make a run wait).
    "--rpm": st.sampled_from(["0", "-1", "x", "100000", "1.5"]),
    "--tpm": st.sampled_from(["0", "x", "10000000"]),
    "--max-concurrency": st.sampled_from(["0", "1", "3", "x"]),
    "--batch-size": st.sampled_from(["0", "1", "2", "5000", "x"]),
    "--base-url": st.sampled_from(
        ["nope", "http://127.0.0.1:1/v1", "http://exa mple.com/v1", "ftp://x", "", "http://[::1"]
    ),
}
_FLAGS = ["--stdin", "--local", "--", "-", "--frobnicate", "--resume", "-q"]
_TEXTS = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(["\udcff", "\n", "\x00"])), max_size=8
)


@st.composite
def _command_lines(draw: Any) -> list[str]:
    argv = [draw(st.sampled_from(["embed", "models", "frobnicate"]))]
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["option", "flag", "text"]))
        if kind == "option":
            option = draw(st.sampled_from(sorted(_OPTION_VALUES)))
            value = draw(_OPTION_VALUES[option])
            argv += [f"{option}={value}"] if draw(st.booleans()) else [option, value]
        elif kind == "flag":
            argv.append(draw(st.sampled_from(_FLAGS)))
        else:
            argv.append(draw(_TEXTS))
    return argv


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=_command_lines(), stdin=st.binary(max_size=40))
def test_fuzzed_command_lines_never_show_a_traceback(
    srv: LocalServer, monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: bytes
) -> None:
    # Only 127.0.0.1 is ever reached: any other name fails to resolve, as offline.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("ALIGNEAI_BASE_URL", srv.url)
    monkeypatch.setenv("ALIGNEAI_API_KEY", KEY)
    result = run([*argv, "--timeout=5"] if "--" not in argv else argv, stdin=stdin)
    assert result.code in (0, 1, 2), result.err
    assert TRACEBACK not in result.err
    assert KEY not in result.err
    lines = result.err_lines
    if result.code == 0:
        # Warnings, and the summary line of a bulk run.
        allowed = ("aligneai: warning: ", "aligneai: embedded ")
        assert all(line.startswith(allowed) for line in lines), result.err
        assert result.out
    else:
        assert len(lines) >= 1
        assert lines[-1].startswith("aligneai: error: "), result.err
        assert all(line.startswith("aligneai: warning: ") for line in lines[:-1]), result.err


# -- the real console script --------------------------------------------------------------------


def console() -> list[str]:
    """The installed ``aligneai`` script next to this interpreter, else ``python -m aligneai``."""
    script = Path(sys.executable).with_name("aligneai")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aligneai"]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_console_bytes_in_argv_and_stdin(tmp_path: Path) -> None:
    argv = [*console(), "embed", "--local", b"caf\xe9".decode("utf-8", "surrogateescape")]
    completed = subprocess.run(
        [arg.encode("utf-8", "surrogateescape") for arg in argv],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stdout == b""
    assert completed.stderr == (
        b"aligneai: error: InvalidArgumentValueError: TEXT: text 1 is not valid UTF-8 "
        b"(byte 0xe9 at character 4)\n"
    )
    completed = subprocess.run(
        [*console(), "embed", "--local", "--stdin"],
        input=b"fine\ncaf\xe9\n",
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr == (
        b"aligneai: error: InvalidArgumentValueError: --stdin: line 2 is not valid UTF-8 "
        b"(byte 0xe9 at byte 4)\n"
    )


@pytest.mark.parametrize(
    ("output", "unbuffered"),
    [("npy", True), ("npy", False), ("jsonl", True), ("json", True), ("json", False)],
)
def test_console_reader_goes_away_quietly(tmp_path: Path, output: str, unbuffered: bool) -> None:
    # Unbuffered, a write to a pipe whose reader left returns a short count: the rest must not
    # be dropped silently (exit 0 with a truncated output), nor end in a traceback.
    # 300 x 1536 float32 is 1.8 MB: far more than a pipe holds, so the writer meets the close.
    texts = [f"text {i}" for i in range(300)]
    argv = ["embed", "--local", "--model", "aligne-embed-large", "--format", output, *texts]
    env = environment()
    if not unbuffered:
        del env["PYTHONUNBUFFERED"]
    process = subprocess.Popen(
        [*console(), *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    head = process.stdout.read(10)  # `| head -c 10`
    process.stdout.close()
    try:
        err = process.stderr.read()
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert len(head) == 10
    assert err == b""
    assert code == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("output", ["npy", "json"])
def test_console_full_disk_is_one_line(tmp_path: Path, output: str) -> None:
    with open("/dev/full", "wb") as full:
        completed = subprocess.run(
            [*console(), "embed", "--local", "--format", output, "x"],
            cwd=tmp_path,
            env=environment(),
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert completed.returncode == 1
    assert completed.stderr == (
        b"aligneai: error: OSError: cannot write the output: No space left on device\n"
    )


def test_console_serve_port_in_use(tmp_path: Path) -> None:
    with listening_socket() as busy:
        port = busy.getsockname()[1]
        completed = subprocess.run(
            [*console(), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    assert completed.returncode == 1
    lines = completed.stderr.decode().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(f"aligneai: error: OSError: cannot listen on 127.0.0.1:{port}: ")


def test_console_ctrl_c_during_a_request(tmp_path: Path) -> None:
    with LocalServer() as slow:
        slow.enqueue(Fault.delay(5))
        process = subprocess.Popen(
            [*console(), "embed", "--base-url", slow.url, "--api-key", KEY, "x"],
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not slow.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            assert slow.requests, "the request never arrived"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130
    assert out == b""
    assert err == b"aligneai: interrupted\n"
