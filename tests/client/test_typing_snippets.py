"""Typing test (issue 12 item 12): user code type-checks under ``mypy --strict``.

`SNIPPET` is what a user writes: ``create(stream=flag)`` with a plain ``bool``, raw responses
of every resource, case-insensitive header reads, an operation run through ``client.runner``
(issue 13 item 2: the seam between resources and clients is typed, not ``Any``). Lines marked
``# E`` must be errors (so the types are precise, not ``Any``); every other line must pass.
mypy cannot see through the editable install's import hook: `_search_path` shows it the
package as a wheel would.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import mypy.api as mypy_api
import pytest

import aligneai
import aligneai.core
import aligneai.transports

SNIPPET = textwrap.dedent(
    """
    from __future__ import annotations

    import aligneai
    from aligneai import (
        AligneAI, AsyncAligneAI, AsyncStream, CreateEmbeddingResponse, EmbeddingMatrix, Headers,
        Model, ModelList, RawResponse, Stream, SyncRunner,
    )
    from aligneai.core import CallOptions, list_models, retrieve_model


    def sync_calls(client: AligneAI, flag: bool) -> None:
        plain: CreateEmbeddingResponse = client.embeddings.create(inputs="x")
        streamed: Stream = client.embeddings.create(inputs="x", stream=True)
        either: CreateEmbeddingResponse | Stream = client.embeddings.create(inputs="x", stream=flag)
        wrong: Stream = client.embeddings.create(inputs="x", stream=flag)  # E
        listed: RawResponse[ModelList] = client.models.with_raw_response.list()
        one: RawResponse[Model] = client.models.with_raw_response.retrieve("m")
        model: Model = one.parse()
        matrix: RawResponse[EmbeddingMatrix] = client.embeddings.with_raw_response.create_matrix(
            inputs=["x"]
        )
        content_type: str | None = listed.headers.get("Content-Type")
        headers: Headers = listed.headers
        must: str = headers["content-type"]
        wrong_header: int = headers.get("x")  # E
        try:
            client.embeddings.create(inputs="x")
        except aligneai.APIStatusError as err:
            retry_after: str | None = err.headers.get("Retry-After")
            err_headers: Headers = err.headers
        runner: SyncRunner = client.runner
        ran: ModelList = runner.request(list_models(), CallOptions())
        ran_raw: RawResponse[Model] = runner.raw(retrieve_model("m"), CallOptions())
        ran_wrong: Model = runner.request(list_models(), CallOptions())  # E


    async def async_calls(client: AsyncAligneAI, flag: bool) -> None:
        plain: CreateEmbeddingResponse = await client.embeddings.create(inputs="x")
        streamed: AsyncStream = await client.embeddings.create(inputs="x", stream=True)
        either: CreateEmbeddingResponse | AsyncStream = await client.embeddings.create(
            inputs="x", stream=flag
        )
        bad: CreateEmbeddingResponse = await client.embeddings.create(inputs="x", stream=flag)  # E
        listed: RawResponse[ModelList] = await client.models.with_raw_response.list()
        one: RawResponse[Model] = await client.models.with_raw_response.retrieve("m")
        matrix: RawResponse[EmbeddingMatrix] = (
            await client.embeddings.with_raw_response.create_matrix(inputs=["x"])
        )
        content_type: str | None = listed.headers.get("Content-Type")
        ran: ModelList = await client.runner.request(list_models(), CallOptions())
        got = await client.runner.request(retrieve_model("m"), CallOptions())
        ran_wrong: RawResponse[Model] = got  # E
    """
)


def _search_path(tmp: Path) -> str | None:
    """A folder where mypy finds ``aligneai`` as installed, or None if site-packages has it.

    mypy cannot follow the editable install's import hook; it refuses site-packages on its
    search path. So: nothing for a wheel install; the package's parent when the source tree
    holds the whole package (``core`` and ``transports`` inside it, as links or folders);
    otherwise a folder of symlinks laid out like the wheel.
    """
    package = Path(aligneai.__path__[0])
    if "site-packages" in package.parts:
        return None
    parts = {"core": aligneai.core.__path__[0], "transports": aligneai.transports.__path__[0]}
    if all((package / name).resolve() == Path(path).resolve() for name, path in parts.items()):
        return str(package.parent)
    shim = tmp / "shim" / "aligneai"
    shim.mkdir(parents=True)
    for entry in package.iterdir():
        if entry.name not in parts and entry.name != "__pycache__":
            (shim / entry.name).symlink_to(entry)
    for name, path in parts.items():
        (shim / name).symlink_to(path)
    return str(shim.parent)


@pytest.mark.slow  # a cold mypy run over the package and its dependencies: 20-40 s
def test_user_code_type_checks_under_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "user_code.py"
    source.write_text(SNIPPET, encoding="utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n", encoding="utf-8")  # not the project's settings
    expected = {n for n, line in enumerate(SNIPPET.splitlines(), 1) if line.endswith("# E")}
    search = _search_path(tmp_path)
    if search is not None:
        monkeypatch.setenv("MYPYPATH", search)
    monkeypatch.chdir(tmp_path)  # mypy puts its working directory first on its search path
    stdout, stderr, _ = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            str(config),
            str(source),
        ]
    )
    assert not stderr, stderr
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    lines = {int(m.group(1)) for m in (re.search(r":(\d+): error:", e) for e in errors) if m}
    # Exactly the marked lines fail, each for an incompatible assignment.
    assert lines == expected, stdout
    assert all("[assignment]" in e for e in errors), stdout
