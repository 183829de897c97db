"""The ``aligneai`` command line: embed texts, list models, run the local server.

    aligneai embed "hello world" --format jsonl
    aligneai embed --local "hello world"        # no key, no network: an in-process server
    aligneai models [ID]
    aligneai serve --host 127.0.0.1 --port 8000

Errors print one line to stderr and exit non-zero (``--debug`` shows the traceback):
1 for API and connection errors, 2 for bad arguments or a missing key, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from aligneai.core.errors import APIError, InvalidArgumentError, MissingAPIKeyError

__all__ = ["main"]

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
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

    parser = argparse.ArgumentParser(
        prog="aligneai", description="The AligneAI embeddings API from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser("embed", parents=[common], help="embed texts")
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed")
    embed.add_argument("--stdin", action="store_true", help="read one text per line from stdin")
    embed.add_argument("--model", help="model id (default: the server's default)")
    embed.add_argument("--dimensions", type=int, help="truncate vectors to N dimensions")
    embed.add_argument(
        "--format",
        choices=("json", "jsonl", "npy"),
        default="json",
        help="json: the whole response; jsonl: one embedding per line; npy: a numpy matrix",
    )

    models = commands.add_parser("models", parents=[common], help="list models, or show one")
    models.add_argument("model_id", nargs="?", metavar="ID", help="a model id")

    serve = commands.add_parser("serve", help="run the local AligneAI server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument("--api-key", help="accept only this key (default: any non-empty key)")
    serve.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


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


def _read_texts(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    texts = list(args.texts)
    if args.stdin:
        texts.extend(line.rstrip("\r\n") for line in stdin if line.strip())
    if not texts:
        raise InvalidArgumentError("TEXT", "give texts to embed, or --stdin to read them")
    return texts


def _embed(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> None:
    texts = _read_texts(args, stdin)
    with _client(args) as client:
        response = client.embeddings.create(
            inputs=texts, model=args.model, dimensions=args.dimensions
        )
    if args.format == "json":
        stdout.write(json.dumps(response) + "\n")
    elif args.format == "jsonl":
        for item in response.data:
            stdout.write(json.dumps({"index": item.index, "embedding": item.embedding}) + "\n")
    else:
        from aligneai.core._numpy import require_numpy

        numpy = require_numpy()
        stdout.flush()
        numpy.save(stdout.buffer, response.to_numpy())


def _models(args: argparse.Namespace, stdout: TextIO) -> None:
    with _client(args) as client:
        result = client.models.retrieve(args.model_id) if args.model_id else client.models.list()
    stdout.write(json.dumps(result, indent=2) + "\n")


def _serve(args: argparse.Namespace) -> None:
    from aligneai.testing import serve

    serve(args.host, args.port, api_key=args.api_key)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        with contextlib.redirect_stderr(stderr):
            args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already reported
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        with _debug_logging(getattr(args, "debug", False), stderr):
            if args.command == "embed":
                _embed(args, stdin, stdout)
            elif args.command == "models":
                _models(args, stdout)
            else:
                _serve(args)
    except KeyboardInterrupt:
        stderr.write("aligneai: interrupted\n")
        return EXIT_INTERRUPTED
    except (MissingAPIKeyError, InvalidArgumentError, ImportError) as exc:
        _report(args, stderr, exc)
        return EXIT_USAGE
    except APIError as exc:
        _report(args, stderr, exc)
        return EXIT_API_ERROR
    return 0


@contextlib.contextmanager
def _debug_logging(enabled: bool, stderr: TextIO) -> Iterator[None]:
    """With --debug, show the ``aligneai`` logger's records on ``stderr`` for this call only."""
    if not enabled:
        yield
        return
    import logging

    logger = logging.getLogger("aligneai")
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _report(args: argparse.Namespace, stderr: TextIO, exc: BaseException) -> None:
    if getattr(args, "debug", False):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=stderr)
    kind = type(exc).__name__
    stderr.write(f"aligneai: error: {kind}: {exc}\n")


def console_main() -> None:
    """Entry point of ``python -m aligneai`` and the ``aligneai`` console script."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`aligneai embed ... | head`): exit quietly, as Unix tools do.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
