"""Typing test (issue 12 item 12): user code type-checks under ``mypy --strict``.

`SNIPPET` is what a user writes: ``create(stream=flag)`` with a plain ``bool``, raw responses
of every resource, case-insensitive header reads, an operation run through ``client.runner``
(issue 13 item 2: the seam between resources and clients is typed, not ``Any``). Lines marked
``# E`` must be errors (so the types are precise, not ``Any``); every other line must pass.
The harness (shared with test_review_fixes.py) is in _mypy_snippet.py: mypy cannot see
through the editable install's import hook, so it is shown the package as a wheel would be.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ._mypy_snippet import marked_lines, run_mypy_strict

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


@pytest.mark.slow  # a cold mypy run over the package and its dependencies: 20-40 s
def test_user_code_type_checks_under_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_mypy_strict(SNIPPET, tmp_path, monkeypatch)
    # Exactly the marked lines fail, each for an incompatible assignment.
    assert run.lines == marked_lines(SNIPPET), run.stdout
    assert all("[assignment]" in e for e in run.errors), run.stdout
