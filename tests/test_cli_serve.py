"""``aligneai serve`` with the bulk-rehearsal settings (issue #11): limits, a token cap, latency.

The flags are checked in-process (parsing, and what reaches `aligneai.testing.serve`), then once
for real: the console script serves, and plain urllib requests meet the limits it was given.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import aligneai.testing
from aligneai.cli import main

TRACEBACK = "Traceback (most recent call last)"


def run(argv: list[str]) -> tuple[int, str]:
    stderr = io.StringIO()
    code = main(argv, stdin=io.StringIO(), stdout=io.StringIO(), stderr=stderr)
    return code, stderr.getvalue()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Record the calls of `aligneai.testing.serve` instead of serving."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def serve(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))

    monkeypatch.setattr(aligneai.testing, "serve", serve)
    return calls


def test_defaults_set_no_limit(served: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    assert run(["serve"]) == (0, "")
    [(args, kwargs)] = served
    assert args == ("127.0.0.1", 8000)
    assert kwargs["api_key"] is None
    limits = {name: kwargs[name] for name in kwargs if name not in ("api_key", "out")}
    assert limits == {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "max_request_tokens": None,
        "latency": 0.0,
        "latency_per_input": 0.0,
    }


def test_every_flag_reaches_the_server(
    served: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    argv = ["serve", "--port", "0", "--rpm", "60", "--tpm", "150000"]
    argv += ["--max-request-tokens", "8000", "--latency", "2", "--latency-per-input", "0.001"]
    assert run(argv) == (0, "")
    [(args, kwargs)] = served
    assert args == ("127.0.0.1", 0)
    assert kwargs["requests_per_minute"] == 60
    assert kwargs["tokens_per_minute"] == 150000
    assert kwargs["max_request_tokens"] == 8000
    assert kwargs["latency"] == 2.0
    assert kwargs["latency_per_input"] == 0.001


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--rpm", "0", "must be at least 1, got 0"),
        ("--rpm", "1.5", "expected a positive integer, got '1.5'"),
        ("--tpm", "-3", "must be at least 1, got -3"),
        ("--max-request-tokens", "many", "expected a positive integer, got 'many'"),
        ("--latency", "-0.1", "must be a finite number >= 0, got '-0.1'"),
        ("--latency", "nan", "must be a finite number >= 0, got 'nan'"),
        ("--latency-per-input", "inf", "must be a finite number >= 0, got 'inf'"),
        ("--latency-per-input", "soon", "expected seconds, got 'soon'"),
    ],
)
def test_bad_values_are_one_usage_line(
    served: list[tuple[tuple[Any, ...], dict[str, Any]]], flag: str, value: str, message: str
) -> None:
    code, err = run(["serve", flag, value])
    assert code == 2
    assert err == (
        f"aligneai: error: UsageError: argument {flag}: {message} (see 'aligneai serve --help')\n"
    )
    assert served == []


def test_a_refusal_by_the_server_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the parser lets through, LocalServer checks again; its argument name becomes
    # the flag the user typed.
    from aligneai.core.errors import InvalidArgumentValueError

    def serve(*args: Any, **kwargs: Any) -> None:
        raise InvalidArgumentValueError("tokens_per_minute", "must be at least 1, got 0")

    monkeypatch.setattr(aligneai.testing, "serve", serve)
    code, err = run(["serve", "--tpm", "5"])
    assert code == 2
    assert err == "aligneai: error: InvalidArgumentValueError: --tpm: must be at least 1, got 0\n"


# -- for real -----------------------------------------------------------------------------------


def _console() -> list[str]:
    script = Path(sys.executable).with_name("aligneai")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aligneai"]


def _post(url: str, inputs: list[str]) -> tuple[int, dict[str, str], Any, float]:
    body = json.dumps({"inputs": inputs, "encoding_format": "float"}).encode()
    request = urllib.request.Request(
        f"{url}/embeddings",
        data=body,
        headers={"Authorization": "Bearer any-key", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status, headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, payload = error.code, dict(error.headers), error.read()
        error.close()
    elapsed = time.monotonic() - started
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(payload), elapsed


def test_console_serve_enforces_the_flags(tmp_path: Path) -> None:
    argv = ["serve", "--port", "0", "--rpm", "3", "--tpm", "1000", "--max-request-tokens", "5"]
    argv += ["--latency", "0.1", "--latency-per-input", "0.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGNEAI_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [*_console(), *argv],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []

    def pump_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    def pump_stderr() -> None:  # the access log must not fill the pipe
        assert process.stderr is not None
        errors.append(process.stderr.read())

    threads = [threading.Thread(target=f, daemon=True) for f in (pump_stdout, pump_stderr)]
    for thread in threads:
        thread.start()
    try:
        first = lines.get(timeout=30)
        prefix = "AligneAI local server listening on "
        assert first.startswith(prefix), first
        url = first[len(prefix) :].strip()

        # 3 inputs: within the 5-token cap; 0.1 s + 3 x 0.1 s of latency.
        status, headers, body, elapsed = _post(url, ["one", "two", "three"])
        assert status == 200, body
        assert elapsed >= 0.4
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-limit-tokens"] == "1000"
        assert body["usage"]["total_tokens"] == 3

        status, _, body, _ = _post(url, ["a b c d e f"])  # 6 tokens > 5
        assert status == 400
        assert body["error"]["code"] == "request_too_large"

        statuses = [_post(url, ["x"])[:2] for _ in range(4)]  # at most 3 a minute
        limited = [headers for status, headers in statuses if status == 429]
        assert limited, [status for status, _ in statuses]
        assert float(limited[0]["retry-after"]) > 0

        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for thread in threads:
            thread.join(5)
        for pipe in (process.stdout, process.stderr):
            assert pipe is not None
            pipe.close()
    assert code == 0, "".join(errors)
    assert TRACEBACK not in "".join(errors)
