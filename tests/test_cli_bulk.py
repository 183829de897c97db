"""``aligneai embed --input/--output``: a whole corpus through ``create_many`` (issue #11).

Each row is checked against the deterministic embedder (`aligneai.testing.embed`), an
independent model of what the local server answers. In-process runs use a module-wide
`LocalServer`; Ctrl-C and the progress bar run the real console script in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aligneai.cli
from aligneai.cli import main
from aligneai.core.errors import InvalidArgumentValueError
from aligneai.testing import LocalServer, embed

np = pytest.importorskip("numpy")

KEY = "sk-test-SECRET-bulk-91ab"
TRACEBACK = "Traceback (most recent call last)"
SUMMARY = re.compile(
    r"aligneai: embedded (\d+) texts?(?: \((\d+) already done\))?, (\d+) tokens?, (\d+) "
    r"requests?, (\d+) (?:retry|retries)(?:, \d+ rate-limited)? in \d+\.\d s"
    r"(?: \(\d+ texts/s, \d+ tokens/s\))?"
    r"(?: -> (.+))?"
)


class Result:
    def __init__(self, code: int, out: bytes, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(argv: list[str], stdin: bytes = b"") -> Result:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    code = main(argv, stdin=stdin_stream, stdout=stdout, stderr=stderr)
    stdout.flush()
    return Result(code, stdout.buffer.getvalue(), stderr.getvalue())  # type: ignore[attr-defined]


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
    return ["embed", "--base-url", server.url, "--api-key", KEY, *argv]


def corpus(count: int, start: int = 0) -> list[str]:
    return [f"text number {i}, with ünïcode ☕" for i in range(start, start + count)]


def write_lines(path: Path, texts: list[str]) -> Path:
    path.write_bytes("".join(text + "\n" for text in texts).encode("utf-8"))
    return path


def expected(texts: list[str], dimensions: int = 384) -> Any:
    return np.array([embed(text, dimensions) for text in texts], dtype=np.float32)


def sent_inputs(server: LocalServer) -> list[str]:
    return [text for request in server.requests for text in request.json["inputs"]]


# -- files in, files out ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".jsonl"])
def test_text_file_to_each_format(srv: LocalServer, tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    texts = corpus(250)
    source = write_lines(tmp_path / "corpus.txt", texts)
    output = tmp_path / f"vectors{suffix}"
    result = run(
        remote(srv, "--input", str(source), "--output", str(output), "--batch-size", "100")
    )
    assert result.code == 0, result.err
    assert result.out == b""
    [line] = result.err_lines
    match = SUMMARY.fullmatch(line)
    assert match, line
    assert match.group(1) == "250"
    assert match.group(4) == "3"  # 250 texts, 100 per request
    assert match.group(6) == str(output)
    assert sorted(len(request.json["inputs"]) for request in srv.requests) == [50, 100, 100]
    assert sorted(sent_inputs(srv)) == sorted(texts)  # each text sent once, verbatim
    want = expected(texts)
    if suffix == ".npy":
        got = np.load(output)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(output)
        assert table.column("index").to_pylist() == list(range(250))
        got = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    else:
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        assert [row["index"] for row in rows] == list(range(250))
        got = np.array([row["embedding"] for row in rows], dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=1e-6)
    done = output.with_name(output.name + ".done.json")  # what --resume checks, kept
    assert not any(
        p.name.startswith("vectors") and p not in (output, done) for p in tmp_path.iterdir()
    )


def test_jsonl_input_with_ids(srv: LocalServer, tmp_path: Path) -> None:
    texts = corpus(30)
    ids = [f"doc-{i}" if i % 2 else i for i in range(30)]  # strings and integers
    source = tmp_path / "corpus.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": id_, "text": text, "extra": 1}) + "\n"
            for id_, text in zip(ids, texts)
        )
    )
    output = tmp_path / "vectors.jsonl"
    argv = remote(srv, "--input", str(source), "--output", str(output), "--dimensions", "32")
    result = run(argv)
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in rows] == [str(i) for i in ids]
    assert [row["index"] for row in rows] == list(range(30))
    np.testing.assert_allclose(
        np.array([row["embedding"] for row in rows]), expected(texts, 32), atol=1e-6
    )


def test_jsonl_input_without_ids(srv: LocalServer, tmp_path: Path) -> None:
    texts = ["alpha", "beta", "gamma"]
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    output = tmp_path / "vectors.npy"
    result = run(remote(srv, "--input", str(source), "--output", str(output), "-q"))
    assert (result.code, result.err) == (0, "")
    np.testing.assert_allclose(np.load(output), expected(texts), atol=1e-6)
    assert not (tmp_path / "vectors.npy.ids.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"one\n\nthree\n", "line 2 is empty"),
        (b"one\ntw\xffo\n", "line 2 is not valid UTF-8 (byte 0xff at byte 3)"),
    ],
)
def test_bad_text_file_names_the_line_before_sending(
    srv: LocalServer, tmp_path: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "corpus.txt"
    source.write_bytes(content * 1000)  # the bad line is near the start of a large file
    result = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "v.npy")))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --input: {source} {message}")
    assert srv.requests == []
    assert not (tmp_path / "v.npy").exists()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "a"}', "{not json"], "line 2 is not JSON"),
        (['["a"]'], 'line 1: expected an object with a "text", got list'),
        (['{"txt": "a"}'], 'line 1: "text" must be a non-empty string, got None'),
        (['{"text": ""}'], 'line 1: "text" must be a non-empty string'),
        (['{"text": 3}'], 'line 1: "text" must be a non-empty string, got 3'),
        (['{"text": "a\\ud800"}'], 'line 1: "text" is not UTF-8 (U+D800 at character 2)'),
        (['{"text": "a", "id": true}'], 'line 1: "id" must be a string or an integer'),
        (['{"text": "a", "id": [1]}'], 'line 1: "id" must be a string or an integer'),
        (['{"text": "a", "id": "x"}', '{"text": "b"}'], 'line 2 has no "id" but line 1 has one'),
        (['{"text": "a"}', '{"text": "b", "id": "x"}'], 'line 2 has an "id" but line 1 has none'),
        (['{"text": "a"}', ""], "line 2 is empty"),
    ],
)
def test_bad_jsonl_names_the_line_before_sending(
    srv: LocalServer, tmp_path: Path, lines: list[str], message: str
) -> None:
    source = tmp_path / "corpus.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "v.npy")))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --input: {source} {message}")
    assert srv.requests == []


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_unreadable_input_is_one_line(srv: LocalServer, tmp_path: Path, what: str) -> None:
    source = tmp_path / "nothing.txt"
    if what == "directory":
        source.mkdir()
    result = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "v.npy")))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --input: cannot read {source}: ")
    assert srv.requests == []


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["--input", "c.txt", "text"], "--input: cannot be combined with TEXT or --stdin"),
        (["--input", "c.txt", "--stdin"], "--input: cannot be combined with TEXT or --stdin"),
        (["--output", "v.npy", "--format", "jsonl", "x"], "--format: applies to stdout"),
        (["--resume", "x"], "--resume: needs --output"),
        (["--output", "v.csv", "x"], "--output: "),
        (["--batch-size", "5000", "x"], "--batch-size: at most 2048"),
    ],
)
def test_conflicting_options_are_refused(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], start: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "c.txt", ["a"])
    result = run(remote(srv, *argv))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: {start}")
    assert srv.requests == []


def test_existing_output_needs_resume(srv: LocalServer, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "corpus.txt", corpus(5))
    output = tmp_path / "v.npy"
    assert run(remote(srv, "--input", str(source), "--output", str(output))).code == 0
    srv.reset()
    result = run(remote(srv, "--input", str(source), "--output", str(output)))
    assert_one_error_line(result, 2, "InvalidArgumentValueError: --output: ")
    assert "add --resume" in result.err
    assert "resume=True" not in result.err
    assert srv.requests == []


# -- more than one request's worth on stdin -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "npy"])
def test_stdin_over_2048_lines_goes_through_the_bulk_path(srv: LocalServer, fmt: str) -> None:
    texts = corpus(2100)
    stdin = "".join(text + "\n" for text in texts).encode()
    result = run(remote(srv, "--stdin", "--format", fmt, "--dimensions", "16"), stdin=stdin)
    assert result.code == 0, result.err
    assert SUMMARY.fullmatch(result.err_lines[-1]), result.err
    assert len(result.err_lines) == 1
    assert len(srv.requests) == 2  # at most 2048 inputs per request
    want = expected(texts, 16)
    if fmt == "npy":
        got = np.load(io.BytesIO(result.out))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in result.out.splitlines()]
        assert [row["index"] for row in rows] == list(range(2100))
        got = np.array([row["embedding"] for row in rows])
    else:
        body = json.loads(result.out)
        assert body["object"] == "list"
        assert [item["index"] for item in body["data"]] == list(range(2100))
        assert {item["object"] for item in body["data"]} == {"embedding"}
        assert body["usage"]["total_tokens"] > 0
        got = np.array([item["embedding"] for item in body["data"]])
    assert got.shape == (2100, 16)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_stdin_bulk_error_names_the_line(srv: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The library names inputs[i]; the user knows TEXT n or line n of stdin.
    def create_many(client: Any, texts: Any, **options: Any) -> Any:
        raise InvalidArgumentValueError("inputs[2050]", "estimated 9000 tokens, above the cap")

    monkeypatch.setattr(aligneai.cli, "_create_many", create_many)
    stdin = "".join(text + "\n" for text in corpus(2100)).encode()
    result = run(remote(srv, "first", "second", "--stdin"), stdin=stdin)
    assert_one_error_line(
        result,
        2,
        "InvalidArgumentValueError: --stdin: line 2049: estimated 9000 tokens, above the cap",
    )


def test_options_reach_create_many(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def create_many(client: Any, texts: Any, **options: Any) -> Any:
        seen.update(options, texts=list(texts))
        raise KeyboardInterrupt

    monkeypatch.setattr(aligneai.cli, "_create_many", create_many)
    argv = ["--rpm", "60", "--tpm", "90000", "--max-concurrency", "4", "--batch-size", "512"]
    argv += ["--model", "aligne-embed-large", "--dimensions", "64", "a", "b"]
    result = run(remote(srv, *argv))
    assert result.code == 130
    assert seen["texts"] == ["a", "b"]
    assert seen["requests_per_minute"] == 60
    assert seen["tokens_per_minute"] == 90000
    assert seen["max_concurrency"] == 4
    assert seen["batch_size"] == 512
    assert seen["model"] == "aligne-embed-large"
    assert seen["dimensions"] == 64
    assert seen["output"] is None
    assert seen["resume"] is False


# -- Ctrl-C and resume --------------------------------------------------------------------------


def test_ctrl_c_in_process_says_how_to_resume(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aligneai.bulk import ProgressEvent

    def create_many(client: Any, texts: Any, **options: Any) -> Any:
        options["progress"](ProgressEvent(done=300, total=1000))
        Path("out.npy").write_bytes(b"partial")
        Path("out.npy.checkpoint.json").write_text("{}")  # what an interrupted run leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(aligneai.cli, "_create_many", create_many)
    monkeypatch.chdir(tmp_path)
    source = write_lines(tmp_path / "my corpus.txt", corpus(1000))
    argv = remote(srv, "--input", str(source), "--output", "out.npy", "--rpm", "5")
    result = run(argv)
    assert result.code == 130
    assert result.out == b""
    quoted = shlex.quote(str(source))
    assert result.err == (
        "aligneai: interrupted: 300 of 1000 texts are in out.npy; to continue: aligneai embed "
        f"--resume --base-url {srv.url} --api-key *** --input {quoted} --output out.npy --rpm 5\n"
    )


@pytest.mark.parametrize("state", ["complete", "nothing"])
def test_ctrl_c_when_there_is_nothing_to_resume(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    # Ctrl-C before the run wrote anything, or after it finished: --resume would not help.
    def create_many(client: Any, texts: Any, **options: Any) -> Any:
        if state == "complete":
            Path("out.npy").write_bytes(b"done")  # finished: no checkpoint any more
        raise KeyboardInterrupt

    monkeypatch.setattr(aligneai.cli, "_create_many", create_many)
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "c.txt", corpus(3))
    result = run(remote(srv, "--input", "c.txt", "--output", "out.npy"))
    assert result.code == 130
    message = {
        "complete": "out.npy is complete (the run had finished)",
        "nothing": "nothing was written to out.npy",
    }[state]
    assert result.err == f"aligneai: interrupted: {message}\n"


def _console() -> list[str]:
    script = Path(sys.executable).with_name("aligneai")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aligneai"]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_console_ctrl_c_then_resume(tmp_path: Path) -> None:
    texts = corpus(400)
    write_lines(tmp_path / "corpus.txt", texts)
    # One request at a time, each held 0.15 s: the run is still going when Ctrl-C comes.
    with LocalServer(latency=0.15) as slow:
        argv = ["embed", "--base-url", slow.url, "--api-key", KEY, "--input", "corpus.txt"]
        argv += ["--output", "v.npy", "--batch-size", "40", "--max-concurrency", "1"]
        process = subprocess.Popen(
            [*_console(), *argv],
            cwd=tmp_path,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while len(slow.requests) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(slow.requests) >= 3, "the run never got going"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 130, err
        assert out == b""
        message = err.decode()
        assert TRACEBACK not in message
        match = re.fullmatch(
            r"aligneai: interrupted: (\d+) of 400 texts are in v\.npy; to continue: (.+)\n",
            message,
        )
        assert match, message
        assert KEY not in message
        done = int(match.group(1))
        assert 0 < done < 400 and done % 40 == 0
        command = shlex.split(match.group(2).replace("***", KEY))
        assert command[:2] == ["aligneai", "embed"]
        assert "--resume" in command
        first_run = len(slow.requests)
        slow.reset()
        # Resume as printed (in-process: same arguments, same working directory).
        os.chdir(tmp_path)
        try:
            resumed = run(command[1:])
        finally:
            os.chdir(Path(__file__).parent)
    assert resumed.code == 0, resumed.err
    summary = SUMMARY.fullmatch(resumed.err_lines[-1])
    assert summary, resumed.err
    assert int(summary.group(2)) == done  # "(N already done)"
    # Only what was not written is sent again (plus, at most, the batch in flight at Ctrl-C).
    assert len(sent_inputs(slow)) <= 400 - done + 40
    assert first_run + len(slow.requests) <= 400 // 40 + 1
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), expected(texts), atol=1e-6)
    assert not (tmp_path / "v.npy.checkpoint.json").exists()


# -- progress -----------------------------------------------------------------------------------


def test_no_terminal_no_bar_and_quiet_is_silent(srv: LocalServer, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "corpus.txt", corpus(10))
    loud = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "a.npy")))
    assert loud.code == 0
    assert len(loud.err_lines) == 1 and SUMMARY.fullmatch(loud.err_lines[0]), loud.err
    quiet = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "b.npy"), "-q"))
    assert (quiet.code, quiet.err) == (0, "")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_console_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    write_lines(tmp_path / "corpus.txt", corpus(300))
    argv = ["embed", "--local", "--input", "corpus.txt", "--output", "v.npy", "--batch-size", "50"]
    primary, secondary = pty.openpty()
    # A new pseudo-terminal is 0 x 0: give it a real size, as a terminal window has.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        process = subprocess.Popen(
            [*_console(), *argv],
            cwd=tmp_path,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        chunks: list[bytes] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process (EIO)
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=30)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
            process.wait()
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert code == 0, screen
    assert TRACEBACK not in screen
    assert "300/300" in screen  # the bar (tqdm or the plain line) reached the total
    last = screen.replace("\r\n", "\n").rstrip("\n").split("\n")[-1]
    assert SUMMARY.fullmatch(last.split("\r")[-1]), screen


def test_empty_input_file_is_refused(srv: LocalServer, tmp_path: Path) -> None:
    source = tmp_path / "empty.txt"
    source.write_bytes(b"")
    result = run(remote(srv, "--input", str(source), "--output", str(tmp_path / "v.npy")))
    assert_one_error_line(result, 2, f"InvalidArgumentValueError: --input: {source} holds no text")
    assert not (tmp_path / "v.npy").exists()


def test_a_failed_run_says_how_to_resume(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aligneai.testing import Fault

    texts = corpus(30)
    write_lines(tmp_path / "corpus.txt", texts)
    monkeypatch.chdir(tmp_path)
    srv.enqueue(Fault.none(), Fault.status(400, body={"error": {"message": "no", "type": "x"}}))
    argv = remote(srv, "--input", "corpus.txt", "--output", "v.npy", "--batch-size", "10")
    argv += ["--max-concurrency", "1"]
    result = run(argv)
    assert_one_error_line(result, 1, "BadRequestError: ")
    assert result.err.rstrip("\n").endswith(
        f"; v.npy is resumable: aligneai embed --resume --base-url {srv.url} --api-key *** "
        "--input corpus.txt --output v.npy --batch-size 10 --max-concurrency 1"
    )
    srv.reset()
    resumed = run([*argv, "--resume"])
    assert resumed.code == 0, resumed.err
    summary = SUMMARY.fullmatch(resumed.err_lines[-1])
    assert summary and summary.group(2) == "10", resumed.err
    assert sorted(sent_inputs(srv)) == sorted(texts[10:])
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), expected(texts), atol=1e-6)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_jsonl_input_to_stdout_keeps_the_ids(srv: LocalServer, tmp_path: Path, fmt: str) -> None:
    texts = corpus(5)
    source = tmp_path / "corpus.jsonl"
    source.write_text(
        "".join(json.dumps({"text": t, "id": f"d{i}"}) + "\n" for i, t in enumerate(texts))
    )
    result = run(remote(srv, "--input", str(source), "--format", fmt, "-q"))
    assert (result.code, result.err) == (0, "")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in result.out.splitlines()]
    else:
        rows = json.loads(result.out)["data"]
        assert [row.pop("object") for row in rows] == ["embedding"] * 5
    assert [list(row) for row in rows] == [["index", "id", "embedding"]] * 5
    assert [row["id"] for row in rows] == [f"d{i}" for i in range(5)]
    assert [row["index"] for row in rows] == list(range(5))
    got = np.array([row["embedding"] for row in rows])
    np.testing.assert_allclose(got, expected(texts), atol=1e-6)


def test_resume_with_other_settings_is_refused(srv: LocalServer, tmp_path: Path) -> None:
    from aligneai.testing import Fault

    source = write_lines(tmp_path / "corpus.txt", corpus(20))
    output = str(tmp_path / "v.npy")
    srv.enqueue(Fault.none(), Fault.status(400))
    base = ["--input", str(source), "--output", output, "--batch-size", "10"]
    first = run(remote(srv, *base, "--max-concurrency", "1"))
    assert first.code == 1, first.err
    srv.reset()
    again = run(remote(srv, *base, "--resume", "--model", "aligne-embed-large"))
    assert_one_error_line(again, 2, "BulkResumeError: --resume: ")
    assert "model" in again.err
    assert srv.requests == []


# -- SIGTERM (task BX) ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_sigterm_in_process_ends_like_ctrl_c_with_143(
    srv: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aligneai.bulk import ProgressEvent

    def create_many(client: Any, texts: Any, **options: Any) -> Any:
        options["progress"](ProgressEvent(done=300, total=1000))
        Path("out.npy").write_bytes(b"partial")
        Path("out.npy.checkpoint.json").write_text("{}")  # what an interrupted run leaves
        os.kill(os.getpid(), signal.SIGTERM)
        # The handler raises at the next instruction; a bounded wait in case it does not.
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the run")

    def before(signum: int, frame: Any) -> None:  # a handler of the host, to be restored
        raise AssertionError("the CLI's handler should have run")

    previous = signal.signal(signal.SIGTERM, before)
    try:
        monkeypatch.setattr(aligneai.cli, "_create_many", create_many)
        monkeypatch.chdir(tmp_path)
        write_lines(tmp_path / "c.txt", corpus(1000))
        result = run(remote(srv, "--input", "c.txt", "--output", "out.npy"))
        assert signal.getsignal(signal.SIGTERM) is before  # restored after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.code == 143
    assert result.out == b""
    assert result.err == (
        "aligneai: terminated: 300 of 1000 texts are in out.npy; to continue: aligneai embed "
        f"--resume --base-url {srv.url} --api-key *** --input c.txt --output out.npy\n"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_console_sigterm_then_resume(tmp_path: Path) -> None:
    texts = corpus(400)
    write_lines(tmp_path / "corpus.txt", texts)
    with LocalServer(latency=0.15) as slow:
        argv = ["embed", "--base-url", slow.url, "--api-key", KEY, "--input", "corpus.txt"]
        argv += ["--output", "v.npy", "--batch-size", "40", "--max-concurrency", "1"]
        process = subprocess.Popen(
            [*_console(), *argv],
            cwd=tmp_path,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while len(slow.requests) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(slow.requests) >= 3, "the run never got going"
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 143, err
        assert out == b""
        message = err.decode()
        assert TRACEBACK not in message
        match = re.fullmatch(
            r"aligneai: terminated: (\d+) of 400 texts are in v\.npy; to continue: (.+)\n",
            message,
        )
        assert match, message
        done = int(match.group(1))
        assert 0 < done < 400 and done % 40 == 0
        command = shlex.split(match.group(2).replace("***", KEY))
        slow.reset()
        os.chdir(tmp_path)
        try:
            resumed = run(command[1:])
        finally:
            os.chdir(Path(__file__).parent)
    assert resumed.code == 0, resumed.err
    assert len(sent_inputs(slow)) <= 400 - done + 40
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), expected(texts), atol=1e-6)


# -- the model in bulk JSON (task BX) --------------------------------------------------------------


@pytest.mark.parametrize("model", [None, "aligne-embed-large"])
def test_bulk_json_to_stdout_names_the_model(srv: LocalServer, model: str | None) -> None:
    stdin = "".join(text + "\n" for text in corpus(7)).encode()
    argv = remote(srv, "--stdin", "--format", "json", "--batch-size", "3", "--dimensions", "16")
    if model is not None:
        argv += ["--model", model]
    result = run(argv, stdin=stdin)
    assert result.code == 0, result.err
    assert len(srv.requests) == 3  # the bulk path: batches of 3
    body = json.loads(result.out)
    # The model the server named, whether or not --model was given.
    assert body["model"] == (model or "aligne-embed-small")
    assert [item["index"] for item in body["data"]] == list(range(7))


def test_an_output_in_use_by_another_run_is_one_line(srv: LocalServer, tmp_path: Path) -> None:
    from aligneai._bulk._lock import OutputLock

    source = write_lines(tmp_path / "c.txt", corpus(3))
    output = tmp_path / "v.npy"
    lock = OutputLock.acquire(output)  # what a run in another terminal holds
    try:
        result = run(remote(srv, "--input", str(source), "--output", str(output), "--resume"))
    finally:
        lock.release()
    assert result.code == 2
    assert result.err == (
        f"aligneai: error: InvalidArgumentValueError: --output: {str(output)!r} is in use by "
        "another run (it holds v.npy.lock); wait for it to end, or write to another file\n"
    )
    assert srv.requests == []
    assert list(tmp_path.iterdir()) == [source]  # nothing written, the lock file removed
