"""``resume=True`` on an output that is already complete: a cheap no-op success (closing-note gap).

A finished output keeps ``<output>.done.json``; resuming it reads the inputs through, checks
them and the settings against that record, and returns the finished run's result without a
request (the local server counts every request it receives). Anything that differs still
raises `BulkResumeError`, before anything is sent and without touching the output.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai.bulk import BulkResumeError, ProgressEvent  # noqa: E402
from aligneai.cli import main  # noqa: E402
from aligneai.testing import LocalServer  # noqa: E402

from ._helpers import DIMS, create_many, expected  # noqa: E402

DEFAULT_MODEL = "aligne-embed-small"  # what the local server answers without a model
SUFFIXES = [".npy", ".parquet", ".jsonl"]
drivers = pytest.mark.parametrize("driver", ["sync", "async"])
suffixes = pytest.mark.parametrize("suffix", SUFFIXES)


def texts(n: int) -> list[str]:
    return [f"gap text {i} of the finished corpus" for i in range(n)]


def read_rows(output: Path) -> Any:
    """The output's rows by index, read with the format's own reader (not our code)."""
    if output.suffix == ".npy":
        return np.load(output)
    if output.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(output)
        assert table.column("index").to_pylist() == list(range(table.num_rows))
        return np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(len(rows)))
    return np.array([row["embedding"] for row in rows], dtype=np.float32)


def finished(tmp_path: Path, suffix: str, corpus: list[str], **kwargs: Any) -> Path:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    output = tmp_path / f"v{suffix}"
    with LocalServer() as server:
        first = create_many(server, "sync", corpus, output=output, batch_size=7, **kwargs)
        assert first.requests == server.stats.requests > 0
    return output


@drivers
@suffixes
def test_resume_on_a_finished_output_sends_nothing_and_returns_its_result(
    tmp_path: Path, driver: str, suffix: str
) -> None:
    corpus = texts(40)
    output = finished(tmp_path, suffix, corpus)
    before = output.read_bytes()
    events: list[ProgressEvent] = []
    with LocalServer() as server:
        # A generator: the inputs are read through once, as a resumed run reads them.
        result = create_many(
            server, driver, (t for t in corpus), output=output, resume=True, progress=events.append
        )
        assert server.stats.requests == 0  # not one request, of any kind
    assert result.already_complete
    assert (result.count, result.dimensions, result.resumed) == (40, DIMS, 40)
    assert result.model == DEFAULT_MODEL
    assert result.output == output
    assert (result.requests, result.retries, result.rate_limited, result.failed) == (0, 0, 0, ())
    assert result.usage.prompt_tokens == result.usage.total_tokens == 0
    assert events and events[-1].done == events[-1].total == 40 and events[-1].failed == 0
    assert output.read_bytes() == before  # nothing rewritten
    np.testing.assert_allclose(read_rows(output), expected(corpus), atol=1e-6)
    if suffix == ".npy":
        assert isinstance(result.matrix, np.memmap) and not result.matrix.flags.writeable
        np.testing.assert_allclose(result.matrix, expected(corpus), atol=1e-6)
    else:
        assert result.matrix is None
    assert "already complete" in repr(result)
    # ... and again: the record is still there, and still holds.
    with LocalServer() as server:
        again = create_many(server, driver, corpus, output=output, resume=True)
        assert server.stats.requests == 0
    assert again.already_complete and again.count == 40


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda c: [*c[:20], "another text", *c[21:]], "differ"),
        (lambda c: c[1:] + c[:1], "differ"),  # the same texts, in another order
        (lambda c: c[:-1], "end after 39 texts"),
        (lambda c: [*c, "one more"], "more than the 40 texts"),
        (lambda c: [], "end after 0 texts"),
    ],
)
@drivers
def test_other_inputs_still_raise_and_send_nothing(
    tmp_path: Path, driver: str, change: Any, says: str
) -> None:
    corpus = texts(40)
    output = finished(tmp_path, ".npy", corpus)
    before = output.read_bytes()
    with LocalServer() as server:
        with pytest.raises(BulkResumeError, match=says) as caught:
            create_many(server, driver, change(corpus), output=output, resume=True)
        assert server.stats.requests == 0
    assert caught.value.argument == "resume"
    assert output.read_bytes() == before
    assert output.with_name("v.npy.done.json").exists()  # a refused run changes nothing


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"dimensions": 4}, "dimensions"), ({"model": "aligne-embed-large"}, "model")],
)
@suffixes
def test_other_settings_still_raise_naming_the_field(
    tmp_path: Path, suffix: str, settings: dict[str, Any], field: str
) -> None:
    corpus = texts(12)
    output = finished(tmp_path, suffix, corpus)
    with LocalServer() as server:
        with pytest.raises(BulkResumeError, match=f"{field} differs"):
            create_many(server, "sync", corpus, output=output, resume=True, **settings)
        with pytest.raises(BulkResumeError, match="ids differs"):
            create_many(
                server, "sync", corpus, output=output, resume=True, ids=[str(i) for i in range(12)]
            )
        assert server.stats.requests == 0


def test_a_bad_text_is_named_as_in_any_run(tmp_path: Path) -> None:
    corpus = texts(10)
    output = finished(tmp_path, ".npy", corpus)
    with LocalServer() as server:
        with pytest.raises(ValueError, match=r"inputs\[3\]: must not be an empty string"):
            create_many(server, "sync", [*corpus[:3], "", *corpus[4:]], output=output, resume=True)
        assert server.stats.requests == 0


def test_failed_inputs_of_the_finished_run_are_reported_again(tmp_path: Path) -> None:
    # Input 5 alone is estimated over max_batch_tokens: with on_error="skip" it is given up on.
    corpus = texts(12)
    corpus[5] = "long " * 400
    output = finished(tmp_path, ".npy", corpus, max_batch_tokens=100, on_error="skip")
    with LocalServer() as server:
        result = create_many(
            server, "sync", corpus, output=output, resume=True, max_batch_tokens=100
        )
        assert server.stats.requests == 0
    assert result.already_complete
    assert result.failed == (5,) and result.resumed == 11 and result.count == 12
    assert result.matrix is not None and np.isnan(result.matrix[5]).all()
    keep = [i for i in range(12) if i != 5]
    np.testing.assert_allclose(result.matrix[keep], expected([corpus[i] for i in keep]), atol=1e-6)


def test_an_output_changed_since_it_was_finished_is_refused(tmp_path: Path) -> None:
    corpus = texts(10)
    output = finished(tmp_path, ".jsonl", corpus)
    with output.open("a") as handle:
        handle.write('{"index": 10, "embedding": [0.0]}\n')
    with LocalServer() as server:
        with pytest.raises(BulkResumeError, match="changed since its run finished it"):
            create_many(server, "sync", corpus, output=output, resume=True)
        assert server.stats.requests == 0


def test_a_finished_output_without_its_record_still_raises(tmp_path: Path) -> None:
    # Written by an aligneai that kept no record, or the record was removed: nothing to check.
    corpus = texts(10)
    output = finished(tmp_path, ".npy", corpus)
    output.with_name("v.npy.done.json").unlink()
    with LocalServer() as server:
        with pytest.raises(BulkResumeError, match=r"is complete .* no record .* nothing to resume"):
            create_many(server, "sync", corpus, output=output, resume=True)
        assert server.stats.requests == 0


@pytest.mark.parametrize("resume", [False, True])
def test_a_record_left_by_a_removed_output_vouches_for_nothing(
    tmp_path: Path, resume: bool
) -> None:
    corpus = texts(10)
    output = finished(tmp_path, ".npy", corpus)
    output.unlink()  # "remove it to embed again"
    other = texts(14)
    with LocalServer() as server:
        result = create_many(server, "sync", other, output=output, resume=resume, batch_size=7)
        assert server.stats.requests == 2  # embedded afresh
    assert not result.already_complete and result.count == 14
    np.testing.assert_allclose(np.load(output), expected(other), atol=1e-6)
    record = json.loads(output.with_name("v.npy.done.json").read_text())
    assert record["count"] == 14  # the new run's record, not the old one


def test_an_interrupted_run_still_resumes_and_then_is_complete(tmp_path: Path) -> None:
    corpus = texts(30)
    output = tmp_path / "v.npy"
    stop_after = 2

    class Stop(Exception):
        pass

    def progress(event: ProgressEvent) -> None:
        if event.requests >= stop_after:
            raise Stop

    with LocalServer() as server:
        with pytest.raises(Stop):
            create_many(
                server,
                "sync",
                corpus,
                output=output,
                batch_size=5,
                max_concurrency=1,
                progress=progress,
            )
        assert not output.with_name("v.npy.done.json").exists()  # unfinished: no record
        resumed = create_many(server, "sync", corpus, output=output, resume=True, batch_size=5)
        assert not resumed.already_complete and 0 < resumed.resumed < 30
        sent = server.stats.requests
        complete = create_many(server, "async", corpus, output=output, resume=True)
        assert server.stats.requests == sent
    assert complete.already_complete and complete.resumed == 30
    np.testing.assert_allclose(np.load(output), expected(corpus), atol=1e-6)


# -- the command line ---------------------------------------------------------------------------


def cli(argv: list[str]) -> tuple[int, str]:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    code = main(
        argv,
        stdin=io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8"),
        stdout=stdout,
        stderr=stderr,
    )
    return code, stderr.getvalue()


@suffixes
def test_cli_resume_on_a_finished_output_exits_0_and_says_so(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    monkeypatch.delenv("ALIGNEAI_API_KEY", raising=False)
    corpus = texts(25)
    source = tmp_path / "corpus.txt"
    source.write_text("".join(t + "\n" for t in corpus), encoding="utf-8")
    output = tmp_path / f"out{suffix}"
    with LocalServer() as server:
        argv = [
            "embed",
            "--base-url",
            server.url,
            "--api-key",
            "k",
            "--input",
            str(source),
            "--output",
            str(output),
            "--dimensions",
            str(DIMS),
        ]
        code, err = cli(argv)
        assert code == 0, err
        sent = server.stats.requests
        before = output.read_bytes()
        code, err = cli([*argv, "--resume"])
        assert code == 0, err
        assert server.stats.requests == sent
        assert err.splitlines() == [
            f"aligneai: {output} was already complete (25 texts); nothing was sent"
        ]
        assert output.read_bytes() == before
        # Another corpus into the finished output: refused, one line, nothing sent.
        source.write_text("".join(t + "\n" for t in texts(26)), encoding="utf-8")
        code, err = cli([*argv, "--resume"])
        assert code != 0
        assert len(err.splitlines()) == 1 and "--resume: " in err and "more than the 25" in err
        assert server.stats.requests == sent


def test_killed_between_its_record_and_its_checkpoint_removal_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record is saved before the checkpoint goes: a run killed in between leaves both.
    from aligneai._bulk._checkpoint import Checkpoint

    class Killed(BaseException):
        pass

    def killed(self: Checkpoint) -> None:
        raise Killed

    corpus = texts(20)
    output = tmp_path / "v.parquet"
    pytest.importorskip("pyarrow")
    with LocalServer() as server:
        with monkeypatch.context() as patch:
            patch.setattr(Checkpoint, "complete", killed)
            with pytest.raises(Killed):
                create_many(server, "sync", corpus, output=output, batch_size=5)
        assert output.with_name("v.parquet.checkpoint.json").exists()
        assert output.with_name("v.parquet.done.json").exists()
        sent = server.stats.requests
        # The checkpoint wins: an ordinary resume, every row already written, nothing sent.
        resumed = create_many(server, "sync", corpus, output=output, resume=True)
        assert not resumed.already_complete and resumed.resumed == 20
        assert server.stats.requests == sent
        assert not output.with_name("v.parquet.checkpoint.json").exists()
        again = create_many(server, "async", corpus, output=output, resume=True)
        assert again.already_complete and server.stats.requests == sent
    np.testing.assert_allclose(read_rows(output), expected(corpus), atol=1e-6)


@pytest.mark.parametrize("dimensions", [None, DIMS])
@suffixes
def test_a_finished_run_of_no_inputs_resumes_as_one(
    tmp_path: Path, suffix: str, dimensions: int | None
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    output = tmp_path / f"e{suffix}"
    with LocalServer() as server:
        first = create_many(server, "sync", [], output=output, dimensions=dimensions)
        again = create_many(server, "async", [], output=output, dimensions=dimensions, resume=True)
        assert server.stats.requests == 0
    assert again.already_complete and again.count == 0
    assert again.dimensions == first.dimensions == (dimensions or 0)
    if suffix == ".npy":
        assert again.matrix is not None and again.matrix.shape == (0, dimensions or 0)
