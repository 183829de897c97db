"""The ``aligneai`` command line: embed texts, list models, run the local server.

    aligneai embed "hello world" --format jsonl
    aligneai embed --local "hello world"        # no key, no network: an in-process server
    aligneai embed --input corpus.txt --output vectors.npy [--resume] [--rpm N] [--tpm N]
    aligneai models [ID]
    aligneai serve --host 127.0.0.1 --port 8000 [--rpm N --tpm N --latency S ...]

Every failure prints exactly one line to stderr, ``aligneai: error: <Kind>: <message>``, and
exits non-zero (``--debug`` adds the traceback): 1 for API, connection and system errors (a port
in use, an unresolvable host, an output that cannot be written), 2 for bad arguments, bad input
text or a missing key, 130 on Ctrl-C. SIGTERM during a bulk run ends it as Ctrl-C does (the
output stays resumable, one line says how to continue) but exits 143, as a process ended by
SIGTERM reports itself to a shell or a supervisor. A closed output pipe (``| head``) ends
quietly with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, TextIO

from aligneai.core.errors import (
    APIError,
    InvalidArgumentError,
    InvalidArgumentValueError,
    MissingAPIKeyError,
)
from aligneai.core.wire import MAX_INPUTS

if TYPE_CHECKING:  # the bulk machinery (and numpy) loads only when a run needs it
    from aligneai.bulk import BulkResult, ProgressEvent

__all__ = ["main"]

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: SIGTERM during a bulk run: 128 + 15, what a shell reports for a process SIGTERM ended.
EXIT_TERMINATED = 143

_BOM = "\ufeff"
_SECRET_OPTIONS = ("--api-key",)
_POSITIONALS = {"model_id": "ID", "command": "COMMAND"}


class _UsageError(Exception):
    """argparse refused the command line (it would otherwise print usage and exit)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line, like every other failure of the CLI."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.prog, message)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0: any free port), got {port}")
    return port


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value!r}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: an abbreviation that works today (--max) breaks the day a flag with
    # the same prefix is added, silently changing what a script means.
    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument("--api-key", help="API key (default: $ALIGNEAI_API_KEY)")
    common.add_argument("--base-url", help="API base URL (default: $ALIGNEAI_BASE_URL)")
    common.add_argument("--timeout", type=float, help="read timeout in seconds")
    common.add_argument("--max-retries", type=int, help="retries of a failed call (default 2)")
    common.add_argument(
        "--local",
        action="store_true",
        help="run against an in-process local server (no key or network needed)",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    parser = _Parser(
        prog="aligneai",
        description="The AligneAI embeddings API from the command line.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser("embed", parents=[common], help="embed texts", allow_abbrev=False)
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed")
    embed.add_argument(
        "--stdin",
        action="store_true",
        help="read one text per line from stdin (UTF-8; an empty line is an error)",
    )
    embed.add_argument("--model", help="model id (default: the server's default)")
    embed.add_argument("--dimensions", type=int, help="truncate vectors to N dimensions")
    embed.add_argument(
        "--format",
        choices=("json", "jsonl", "npy"),
        help="of stdout (default json): the whole response; jsonl: one embedding per line; "
        "npy: a numpy matrix",
    )
    bulk = embed.add_argument_group(
        "a whole corpus",
        "at the server's rate limit, in order, resumable (also used for more than "
        f"{MAX_INPUTS} texts)",
    )
    bulk.add_argument(
        "--input",
        metavar="FILE",
        help='one text per line, or .jsonl: one {"text": ..., "id": ...} object per line',
    )
    bulk.add_argument(
        "--output",
        metavar="FILE",
        help="write the vectors to FILE.npy, FILE.parquet or FILE.jsonl (instead of stdout)",
    )
    bulk.add_argument(
        "--resume", action="store_true", help="continue an interrupted run into --output"
    )
    bulk.add_argument(
        "--rpm", type=_positive_int, metavar="N", help="send at most N requests per minute"
    )
    bulk.add_argument(
        "--tpm", type=_positive_int, metavar="N", help="send at most N tokens per minute"
    )
    bulk.add_argument(
        "--max-concurrency",
        type=_positive_int,
        metavar="N",
        help="at most N requests in flight (default: adaptive)",
    )
    bulk.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help=f"at most N texts per request (default {MAX_INPUTS})",
    )
    bulk.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary line"
    )

    models = commands.add_parser(
        "models", parents=[common], help="list models, or show one", allow_abbrev=False
    )
    models.add_argument("model_id", nargs="?", metavar="ID", help="a model id")

    serve = commands.add_parser("serve", help="run the local AligneAI server", allow_abbrev=False)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    serve.add_argument("--debug", action="store_true", help="show tracebacks")
    rehearsal = serve.add_argument_group(
        "bulk rehearsal", "limits and latency like a production server's (default: none)"
    )
    rehearsal.add_argument(
        "--rpm", type=_positive_int, metavar="N", help="requests per minute (429 beyond)"
    )
    rehearsal.add_argument(
        "--tpm", type=_positive_int, metavar="N", help="tokens per minute (429 beyond)"
    )
    rehearsal.add_argument(
        "--max-request-tokens",
        type=_positive_int,
        metavar="N",
        help="most tokens in one request (400 request_too_large beyond)",
    )
    rehearsal.add_argument(
        "--latency", type=_seconds, default=0.0, metavar="S", help="seconds added to each request"
    )
    rehearsal.add_argument(
        "--latency-per-input",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="seconds added per input text of an embeddings request",
    )
    return parser


# -- input ----------------------------------------------------------------------------------


def _utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as UTF-8 (None if it can).

    Bytes that are not UTF-8 reach us as lone surrogates: argv is decoded with
    ``surrogateescape`` (U+DC80-U+DCFF stand for the bytes 0x80-0xFF).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        what = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"U+{char:04X}"
        return f"{what} at character {exc.start + 1}"
    return None


def _check_argv_encoding(args: argparse.Namespace) -> None:
    """Refuse options and texts that are not valid UTF-8, naming them (never their value)."""
    for name, value in sorted(vars(args).items()):
        if isinstance(value, str) and (problem := _utf8_problem(value)):
            option = _POSITIONALS.get(name) or "--" + name.replace("_", "-")
            raise InvalidArgumentValueError(option, f"is not valid UTF-8 ({problem})")
    for number, text in enumerate(getattr(args, "texts", None) or (), 1):
        if problem := _utf8_problem(text):
            raise InvalidArgumentValueError("TEXT", f"text {number} is not valid UTF-8 ({problem})")
        if not text:
            raise InvalidArgumentValueError(
                "TEXT", f"text {number} is empty; the API does not embed empty texts"
            )


def _lines(source: Iterable[Any], option: str, where: str = "") -> Iterator[str]:
    """Yield the lines of ``source`` as texts, refusing (with the line number) what cannot be sent.

    Each line is one text, verbatim but for its line ending (LF or CRLF) and a UTF-8 byte order
    mark at the very start; so output ``index`` i is line i + 1. An empty line is refused, not
    skipped, because skipping would shift every later index. ``source`` yields bytes (read
    them when you can: a text layer's decoding depends on the locale and either fails with a
    traceback or smuggles invalid bytes through as surrogates) or str.
    """
    for number, raw in enumerate(source, 1):
        if isinstance(raw, bytes):
            data = raw[:-1] if raw.endswith(b"\n") else raw
            data = data[:-1] if data.endswith(b"\r") else data
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArgumentValueError(
                    option,
                    f"{where}line {number} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at "
                    f"byte {exc.start + 1})",
                ) from None
        else:
            line = raw[:-1] if raw.endswith("\n") else raw
            line = line[:-1] if line.endswith("\r") else line
            if problem := _utf8_problem(line):
                raise InvalidArgumentValueError(
                    option, f"{where}line {number} is not valid UTF-8 ({problem})"
                )
        if number == 1 and line.startswith(_BOM):
            line = line[1:]
        if not line:
            raise InvalidArgumentValueError(
                option,
                f"{where}line {number} is empty; the API does not embed empty texts "
                "(drop blank lines first, e.g. grep -v '^$')",
            )
        yield line


def _stdin_lines(stdin: IO[Any] | None) -> Iterator[str]:
    if stdin is None:
        raise InvalidArgumentValueError("--stdin", "standard input is closed")
    return _lines(getattr(stdin, "buffer", None) or stdin, "--stdin")


class _Corpus:
    """The texts (and ids) of ``--input FILE``, checked whole before anything is sent.

    A ``.jsonl`` file holds one JSON object per line with a non-empty string ``"text"`` and,
    on every line or on none, an ``"id"`` (string or integer); any other file holds one text
    per line (UTF-8, as for ``--stdin``). The first pass counts and checks every line (the
    progress bar then knows the total); each iteration reads the file again, lazily, so the
    corpus never has to fit in memory.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.jsonl = path.lower().endswith((".jsonl", ".ndjson"))
        count, has_ids = 0, False
        for count, (_, record_id) in enumerate(self._records(), 1):
            if count == 1:
                has_ids = record_id is not None
            elif (record_id is not None) != has_ids:
                this, first = ("has no", "has one") if has_ids else ("has an", "has none")
                raise InvalidArgumentValueError(
                    "--input",
                    f'{path} line {count} {this} "id" but line 1 {first}: give ids on every '
                    "line or none",
                )
        self.count, self.has_ids = count, has_ids

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return (text for text, _ in self._records())

    def ids(self) -> Iterator[str]:
        """The ids, in input order (only when the file has them)."""
        return (str(record_id) for _, record_id in self._records())

    def _records(self) -> Iterator[tuple[str, str | int | None]]:
        try:
            file = open(self.path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise InvalidArgumentValueError(
                "--input", f"cannot read {self.path}: {exc.strerror or exc}"
            ) from None
        with file:
            where = f"{self.path} "
            lines = _lines(_reading(file, self.path), "--input", where)
            if not self.jsonl:
                for line in lines:
                    yield line, None
                return
            for number, line in enumerate(lines, 1):
                yield _json_record(line, f"{where}line {number}")


def _reading(file: IO[bytes], path: str) -> Iterator[bytes]:
    """The lines of ``file``; a read error (a directory, an I/O error) names the file."""
    try:
        yield from file
    except OSError as exc:
        raise InvalidArgumentValueError(
            "--input", f"cannot read {path}: {exc.strerror or exc}"
        ) from None


def _json_record(line: str, where: str) -> tuple[str, str | int | None]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise InvalidArgumentValueError("--input", f"{where} is not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InvalidArgumentValueError(
            "--input", f'{where}: expected an object with a "text", got {type(record).__name__}'
        )
    text = record.get("text")
    if not isinstance(text, str) or not text:
        raise InvalidArgumentValueError(
            "--input", f'{where}: "text" must be a non-empty string, got {text!r:.40}'
        )
    if problem := _utf8_problem(text):
        raise InvalidArgumentValueError("--input", f'{where}: "text" is not UTF-8 ({problem})')
    record_id = record.get("id")
    if record_id is not None and (
        isinstance(record_id, bool) or not isinstance(record_id, (str, int))
    ):
        raise InvalidArgumentValueError(
            "--input", f'{where}: "id" must be a string or an integer, got {record_id!r:.40}'
        )
    return text, record_id


def _read_texts(args: argparse.Namespace, stdin: IO[Any] | None) -> list[str]:
    texts = list(args.texts)
    if args.stdin:
        texts.extend(_stdin_lines(stdin))
    if not texts:
        raise InvalidArgumentValueError("TEXT", "give texts to embed, or --stdin to read them")
    return texts


# -- commands -------------------------------------------------------------------------------


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    from aligneai import AligneAI

    options: dict[str, Any] = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    if args.local:
        from aligneai.testing import LocalServer

        with (
            LocalServer() as server,
            AligneAI(api_key=args.api_key or "local", base_url=server.url, **options) as client,
        ):
            yield client
        return
    with AligneAI(api_key=args.api_key, base_url=args.base_url, **options) as client:
        yield client


class _Output:
    """Standard output that never loses part of a write.

    Unbuffered (``python -u``, ``PYTHONUNBUFFERED=1``, as container images often set), stdout's
    binary layer is the raw file: a write to a pipe whose reader went away returns a short
    count instead of failing, and the text layer and ``ndarray.tofile`` then drop the rest
    silently (exit 0 with a truncated output). Every write here goes through a loop that sends
    the rest until it is written or the system says why not (EPIPE: `BrokenPipeError`).
    """

    def __init__(self, stdout: TextIO) -> None:
        self._stdout = stdout
        self._binary: IO[bytes] | None = getattr(stdout, "buffer", None)

    def text(self, data: str) -> None:
        """Write ``data`` (ASCII JSON here, so its bytes are the same in any encoding)."""
        if self._binary is None:  # an in-memory stream: nothing can be short
            self._stdout.write(data)
            return
        self.binary(data.encode("utf-8"))

    def binary(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` to the binary layer, then flush it."""
        if self._binary is None:
            raise InvalidArgumentValueError("--format", "npy needs a binary standard output")
        self._stdout.flush()
        view = memoryview(data).cast("B")
        try:
            while view:
                written = self._binary.write(view)
                if not written:  # None: a non-blocking stdout that is full; 0: no progress
                    raise OSError(errno.EAGAIN, "standard output accepts no more bytes")
                view = view[written:]
        finally:
            # A failed write keeps this frame alive in the traceback: a view still exported
            # then makes the buffer's owner complain when it is freed (BufferError).
            view.release()
        self._binary.flush()


def _write_npy(output: _Output, matrix: Any) -> None:
    numpy = _numpy()
    encoded = io.BytesIO()
    numpy.save(encoded, matrix)
    # Never ndarray.tofile on stdout: on a closed pipe it raises a bare OSError ("... requested
    # and 0 written"), or writes part of the matrix and says nothing.
    view = encoded.getbuffer()
    try:
        output.binary(view)
    finally:
        view.release()


def _numpy() -> Any:
    from aligneai.core._numpy import require_numpy

    return require_numpy()


def _check_embed_options(args: argparse.Namespace) -> None:
    if args.input is not None and (args.texts or args.stdin):
        raise InvalidArgumentValueError("--input", "cannot be combined with TEXT or --stdin")
    if args.output is not None and args.format is not None:
        raise InvalidArgumentValueError(
            "--format", "applies to stdout; --output takes its format from its extension"
        )
    if args.resume and args.output is None:
        raise InvalidArgumentValueError("--resume", "needs --output (the run to continue)")


def _embed(
    args: argparse.Namespace,
    stdin: IO[Any] | None,
    stdout: TextIO,
    stderr: TextIO,
    arguments: Sequence[str],
) -> None:
    _check_embed_options(args)
    bulk_options = (args.output, args.rpm, args.tpm, args.max_concurrency, args.batch_size)
    bulk = args.input is not None or args.resume or any(o is not None for o in bulk_options)
    if bulk or args.format == "npy":
        _numpy()  # a missing numpy is reported before anything is read or sent
    texts: Sequence[str] | _Corpus
    ids = None
    if args.input is not None:
        texts = _Corpus(args.input)
        if not len(texts):
            raise InvalidArgumentValueError("--input", f"{args.input} holds no text")
        ids = texts.ids() if texts.has_ids else None
    else:
        texts = _read_texts(args, stdin)
        if len(texts) > MAX_INPUTS:
            _numpy()
            bulk = True
    if bulk:
        _embed_many(args, texts, ids, stdout, stderr, arguments)
        return
    with _client(args) as client:
        response = client.embeddings.create(
            inputs=texts, model=args.model, dimensions=args.dimensions
        )
    output = _Output(stdout)
    with _writing_output():
        if args.format in (None, "json"):
            output.text(json.dumps(response) + "\n")
        elif args.format == "jsonl":
            output.text(
                "".join(
                    json.dumps({"index": item.index, "embedding": item.embedding}) + "\n"
                    for item in response.data
                )
            )
        else:
            _write_npy(output, response.to_numpy())


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a bulk run; the message says what was kept, how to continue."""

    def __init__(self, message: str, *, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived during a bulk run: it stops the run the way Ctrl-C does."""


@contextlib.contextmanager
def _sigterm_stops_the_run() -> Iterator[None]:
    """While the block runs, SIGTERM raises `_Terminated` (a KeyboardInterrupt) in it.

    So a run stopped by ``kill``, a container stop or a job scheduler's time limit unwinds like
    Ctrl-C: rows written stay written and the line that says how to resume is printed. The
    previous handler is restored after the block. Only where a handler can be set: on the main
    thread, not on Windows (where SIGTERM cannot be caught from another process).
    """
    previous: Any = None
    if sys.platform != "win32" and threading.current_thread() is threading.main_thread():

        def stop(signum: int, frame: Any) -> None:
            raise _Terminated

        with contextlib.suppress(ValueError, OSError):
            previous = signal.signal(signal.SIGTERM, stop)
            if previous is None:  # set from outside Python: nothing to restore but the default
                previous = signal.SIG_DFL
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _embed_many(
    args: argparse.Namespace,
    texts: Sequence[str] | _Corpus,
    ids: Iterable[str] | None,
    stdout: TextIO,
    stderr: TextIO,
    arguments: Sequence[str],
) -> None:
    """Embed through ``create_many``: into ``--output``, or in memory and then to stdout."""
    total = len(texts)
    reporter = None
    if not args.quiet and _is_terminal(stderr):
        from aligneai._bulk._progress import make_reporter

        reporter = make_reporter(True, total=total, stream=stderr)
    latest: list[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        latest[:] = [event]
        if reporter is not None:
            reporter.update(event)

    try:
        with _sigterm_stops_the_run(), _client(args) as client:
            try:
                result = _create_many(
                    client,
                    texts,
                    model=args.model,
                    dimensions=args.dimensions,
                    ids=ids if args.output is not None else None,
                    batch_size=args.batch_size or MAX_INPUTS,
                    max_concurrency=args.max_concurrency,
                    requests_per_minute=args.rpm,
                    tokens_per_minute=args.tpm,
                    output=args.output,
                    resume=args.resume,
                    progress=progress,
                )
            finally:
                if reporter is not None:
                    reporter.close()
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        if args.output is None:
            raise _Interrupted("", terminated=terminated) from None
        if _resumable(args.output):
            done = latest[-1].done if latest else 0
            raise _Interrupted(
                f"{done} of {total} texts are in {args.output}; to continue: "
                f"{_resume_command(arguments)}",
                terminated=terminated,
            ) from None
        if os.path.exists(args.output):  # Ctrl-C after the run had finished its output
            raise _Interrupted(
                f"{args.output} is complete (the run had finished)", terminated=terminated
            ) from None
        raise _Interrupted(f"nothing was written to {args.output}", terminated=terminated) from None
    except InvalidArgumentError as exc:
        raise _name_input(exc, args, texts) from exc
    except APIError as exc:
        if args.output is not None and _resumable(args.output):
            raise _Resumable(
                f"{exc}; {args.output} is resumable: {_resume_command(arguments)}", exc
            ) from exc
        raise
    if args.output is None:
        with _writing_output():
            ids = texts.ids() if isinstance(texts, _Corpus) and texts.has_ids else None
            _write_matrix(_Output(stdout), args, result, ids)
    if not args.quiet:
        _write_line(stderr, _summary(result))


class _Resumable(APIError):
    """A bulk run stopped by an error and left a resumable output; ``kind`` is the error's."""

    def __init__(self, message: str, cause: APIError) -> None:
        super().__init__(message)
        self.kind = type(cause).__name__


def _resumable(output: str) -> bool:
    from pathlib import Path

    from aligneai._bulk._checkpoint import checkpoint_path
    from aligneai._bulk._lock import resolve_output

    return checkpoint_path(resolve_output(Path(output))).exists()


def _create_many(client: Any, texts: Iterable[str], **options: Any) -> BulkResult:
    """``client.embeddings.create_many`` (one seam, so tests can stand in for the run)."""
    result: BulkResult = client.embeddings.create_many(texts, **options)
    return result


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _name_input(
    exc: InvalidArgumentError, args: argparse.Namespace, texts: Sequence[str] | _Corpus
) -> InvalidArgumentError:
    """``inputs[i]`` in the library's words, as the user knows it: a TEXT or a line number."""
    argument = exc.argument
    if not (argument.startswith("inputs[") and argument.endswith("]")):
        return exc
    try:
        index = int(argument[len("inputs[") : -1])
    except ValueError:
        return exc
    if isinstance(texts, _Corpus):
        option, where = "--input", f"{texts.path} line {index + 1}"
    elif index < len(args.texts):
        option, where = "TEXT", f"text {index + 1}"
    else:
        option, where = "--stdin", f"line {index - len(args.texts) + 1}"
    detail = str(exc)[len(argument) + 2 :] if str(exc).startswith(argument + ": ") else str(exc)
    return _Renamed(option, f"{where}: {detail}", type(exc).__name__)


class _Renamed(InvalidArgumentValueError):
    """A library argument error re-worded for the command line; ``kind`` is the original's."""

    def __init__(self, argument: str, message: str, kind: str) -> None:
        super().__init__(argument, message)
        self.kind = kind


def _resume_command(arguments: Sequence[str]) -> str:
    """The command line that continues this run (the key shown as ***)."""
    shown: list[str] = []
    hide = False
    for token in arguments:
        if hide:
            shown.append("***")
            hide = False
            continue
        if token == "--api-key":
            hide = True
        elif token.startswith("--api-key="):
            token = "--api-key=***"
        shown.append(token if "***" in token else shlex.quote(token))
    if "--resume" not in arguments:
        shown.insert(1, "--resume")  # right after the command: never after a "--"
    return "aligneai " + " ".join(shown)


def _write_matrix(
    output: _Output, args: argparse.Namespace, result: BulkResult, ids: Iterable[str] | None
) -> None:
    """A bulk result on stdout, in --format (json: the shape of one create() answer).

    The ids of a ``.jsonl`` input go into each json/jsonl row (an npy matrix has no place for
    them: row i is line i + 1).
    """
    matrix = result.matrix
    assert matrix is not None  # in memory: no output file was given
    if args.format == "npy":
        _write_npy(output, matrix)
        return
    id_of = iter(ids) if ids is not None else None

    def row(i: int, **fields: Any) -> str:
        fields["index"] = i
        if id_of is not None:
            fields["id"] = next(id_of)
        fields["embedding"] = matrix[i].tolist()
        return json.dumps(fields)

    rows = 1024  # rows per write: memory stays small whatever the corpus size
    if args.format == "jsonl":
        for start in range(0, result.count, rows):
            stop = min(start + rows, result.count)
            output.text("".join(row(i) + "\n" for i in range(start, stop)))
        return
    output.text('{"object": "list", "data": [')
    for start in range(0, result.count, rows):
        stop = min(start + rows, result.count)
        more = ", " if stop < result.count else ""
        output.text(", ".join(row(i, object="embedding") for i in range(start, stop)) + more)
    usage = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
    # The model the server named (one per run: create_many refuses answers that differ).
    model = json.dumps(result.model if result.model is not None else args.model)
    output.text(f'], "model": {model}, "usage": {json.dumps(usage)}}}\n')


def _count(number: int, word: str, plural: str = "") -> str:
    return f"{number} {word if number == 1 else plural or word + 's'}"


def _summary(result: BulkResult) -> str:
    """One line: texts, tokens, requests, retries, elapsed, throughput (and where)."""
    if result.already_complete:  # --resume on a finished output: nothing was sent
        failed = f", {len(result.failed)} failed" if result.failed else ""
        return (
            f"aligneai: {result.output} was already complete ({_count(result.count, 'text')}"
            f"{failed}); nothing was sent"
        )
    sent = result.count - result.resumed
    tokens = result.usage.total_tokens
    elapsed = result.elapsed
    parts = [f"embedded {_count(sent, 'text')}"]
    if result.resumed:
        parts[0] += f" ({result.resumed} already done)"
    parts += [_count(tokens, "token"), _count(result.requests, "request")]
    parts.append(_count(result.retries, "retry", "retries"))
    if result.rate_limited:
        parts.append(f"{result.rate_limited} rate-limited")
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    speed = ""
    if elapsed > 0:
        speed = f" ({sent / elapsed:.0f} texts/s, {tokens / elapsed:.0f} tokens/s)"
    where = f" -> {result.output}" if result.output is not None else ""
    return f"aligneai: {', '.join(parts)} in {elapsed:.1f} s{speed}{where}"


def _models(args: argparse.Namespace, stdout: TextIO) -> None:
    with _client(args) as client:
        result = client.models.retrieve(args.model_id) if args.model_id else client.models.list()
    with _writing_output():
        _Output(stdout).text(json.dumps(result, indent=2) + "\n")


@contextlib.contextmanager
def _writing_output() -> Iterator[None]:
    """Name a failed write of the output (a full disk) instead of a bare errno."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OSError(f"cannot write the output: {exc.strerror or exc}") from exc


class _ServeError(OSError):
    """The local server could not start (the message names host and port)."""


def _serve(args: argparse.Namespace, stdout: TextIO | None) -> None:
    from aligneai.testing import serve

    if args.api_key is not None and not args.api_key:
        raise InvalidArgumentValueError(
            "--api-key", "must not be empty (omit it to accept any key)"
        )
    try:
        serve(
            args.host,
            args.port,
            api_key=args.api_key,
            out=stdout or io.StringIO(),
            requests_per_minute=args.rpm,
            tokens_per_minute=args.tpm,
            max_request_tokens=args.max_request_tokens,
            latency=args.latency,
            latency_per_input=args.latency_per_input,
        )
    except BrokenPipeError:
        raise  # stdout went away: the console entry point ends quietly
    except OSError as exc:  # bind failures: in use, not permitted, unresolvable, not local
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise _ServeError(f"cannot listen on {args.host}:{args.port}: {reason}") from exc


# -- entry points ---------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code (the console script exits with it).

    A `BrokenPipeError` from writing ``stdout`` propagates: the caller owns that stream (the
    console entry point silences it and exits 1).
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    err: TextIO = stderr or sys.stderr or io.StringIO()  # None: started with stderr closed
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    args: argparse.Namespace | None = None
    try:
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
                args = _parser().parse_args(arguments)
        except SystemExit as exit_:  # --help
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        debug = getattr(args, "debug", False)
        with _logging_to(err, debug):
            _check_argv_encoding(args)
            if getattr(args, "local", False) and args.base_url is not None:
                raise InvalidArgumentValueError("--base-url", "cannot be combined with --local")
            if args.command == "embed":
                _embed(args, stdin, _require_stdout(stdout), err, arguments)
            elif args.command == "models":
                _models(args, _require_stdout(stdout))
            else:
                _serve(args, stdout)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Interrupted) and exc.terminated
        word = "terminated" if terminated else "interrupted"
        _write_line(err, f"aligneai: {word}: {exc}" if str(exc) else f"aligneai: {word}")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except _UsageError as exc:
        command = exc.prog
        message = _redact(str(exc), arguments)
        _report(err, exc, "UsageError", f"{message} (see '{command} --help')", debug)
        return EXIT_USAGE
    except InvalidArgumentError as exc:
        kind = exc.kind if isinstance(exc, _Renamed) else type(exc).__name__
        _report(err, exc, kind, _cli_message(exc, args), debug)
        return EXIT_USAGE
    except MissingAPIKeyError as exc:
        message = "no API key: pass --api-key or set ALIGNEAI_API_KEY (or try --local)"
        _report(err, exc, type(exc).__name__, message, debug)
        return EXIT_USAGE
    except ImportError as exc:
        _report(err, exc, type(exc).__name__, str(exc), debug)
        return EXIT_USAGE
    except (APIError, OSError) as exc:
        kind = "OSError" if isinstance(exc, _ServeError) else type(exc).__name__
        kind = exc.kind if isinstance(exc, _Resumable) else kind
        _report(err, exc, kind, str(exc), debug)
        return EXIT_API_ERROR
    except Exception as exc:  # a bug: still one line, and the way to see more
        message = f"{exc} (unexpected; --debug shows the traceback)"
        _report(err, exc, type(exc).__name__, message, debug)
        return EXIT_API_ERROR
    return 0


# The library names its arguments; the user typed options (or set environment variables).
_OPTION_OF = {
    "timeout": "--timeout",
    "max_retries": "--max-retries",
    "dimensions": "--dimensions",
    "model": "--model",
    "inputs": "TEXT",
    "requests_per_minute": "--rpm",
    "tokens_per_minute": "--tpm",
    "max_request_tokens": "--max-request-tokens",
    "latency": "--latency",
    "latency_per_input": "--latency-per-input",
    "max_concurrency": "--max-concurrency",
    "batch_size": "--batch-size",
    "output": "--output",
    "resume": "--resume",
}
_ENVIRONMENT_OF = {"api_key": "ALIGNEAI_API_KEY", "base_url": "ALIGNEAI_BASE_URL"}


def _cli_message(exc: InvalidArgumentError, args: argparse.Namespace | None) -> str:
    """The error's message with the library's argument name replaced by the CLI's."""
    argument = exc.argument
    option = _OPTION_OF.get(argument)
    if argument in _ENVIRONMENT_OF and args is not None:
        given = getattr(args, argument, None) is not None
        option = "--" + argument.replace("_", "-") if given else "$" + _ENVIRONMENT_OF[argument]
    prefix = f"{argument}: "
    if option is None or not str(exc).startswith(prefix):
        return str(exc)
    detail = str(exc)[len(prefix) :].replace("pass resume=True", "add --resume")
    return f"{option}: {detail}"


def _require_stdout(stdout: TextIO | None) -> TextIO:
    if stdout is None:  # started with stdout closed (>&-)
        raise OSError("cannot write the output: standard output is closed")
    return stdout


def _redact(message: str, arguments: Sequence[str]) -> str:
    """Hide secret option values that argparse may echo (e.g. as unrecognized arguments)."""
    secrets = []
    for i, token in enumerate(arguments):
        for option in _SECRET_OPTIONS:
            if token == option and i + 1 < len(arguments):
                secrets.append(arguments[i + 1])
            elif token.startswith(option + "="):
                secrets.append(token[len(option) + 1 :])
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


@contextlib.contextmanager
def _logging_to(stderr: TextIO, debug: bool) -> Iterator[None]:
    """Show the ``aligneai`` logger's records on ``stderr`` for this call only.

    Warnings (e.g. a key about to travel over plain http) as ``aligneai: warning: ...`` lines;
    with --debug, every record.
    """
    import logging

    logger = logging.getLogger("aligneai")
    handler = logging.StreamHandler(stderr)
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("aligneai: %(levelname)s: %(message)s"))
        handler.setLevel(logging.WARNING)
        handler.addFilter(_lowercase_level)
    level = logger.level
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lowercase_level(record: Any) -> bool:
    record.levelname = record.levelname.lower()
    return True


def _report(stderr: TextIO, exc: BaseException, kind: str, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=stderr)
    # One line whatever the message holds (server error bodies may span lines).
    text = " ".join(message.splitlines()) if message else ""
    _write_line(stderr, f"aligneai: error: {kind}: {text}" if text else f"aligneai: error: {kind}")


def _write_line(stream: TextIO, line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr itself closed: nowhere to report
        stream.write(line + "\n")
        stream.flush()


def _silence_stdout() -> None:
    """Point fd 1 at devnull so the interpreter's final flush of stdout cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def console_main() -> None:
    """Entry point of ``python -m aligneai`` and the ``aligneai`` console script."""
    code = EXIT_API_ERROR
    try:
        code = main()
        if sys.stdout is not None:
            sys.stdout.flush()
    except KeyboardInterrupt:
        _write_line(sys.stderr, "aligneai: interrupted")
        code = EXIT_INTERRUPTED
        _silence_stdout()
    except BrokenPipeError:
        # The reader went away (`aligneai embed ... | head`): exit quietly, as Unix tools do.
        code = EXIT_API_ERROR
        _silence_stdout()
    except OSError as exc:  # the last flush of stdout failed (a full disk, a closed fd)
        if code == 0:
            reason = exc.strerror or str(exc)
            _write_line(sys.stderr, f"aligneai: error: OSError: cannot write the output: {reason}")
        code = EXIT_API_ERROR
        _silence_stdout()
    sys.exit(code)
