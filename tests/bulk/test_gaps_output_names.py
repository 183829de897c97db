"""Two names for one output take one lock and share one checkpoint (closing-note gap).

A symlink to the output, the absolute path of a relative name, ``a/../out.npy``: a second run
through any other name is refused while the first holds the output, with the same error as for
the same name, before it sends anything; and the files a run keeps beside the output (lock,
checkpoint, record) sit beside the file itself, so a run through one name resumes the run
another name left.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("aiohttp")

from aligneai._bulk._lock import OutputLock, resolve_output  # noqa: E402
from aligneai.bulk import ProgressEvent  # noqa: E402
from aligneai.core.errors import InvalidArgumentValueError  # noqa: E402
from aligneai.testing import LocalServer  # noqa: E402

from ._helpers import create_many, expected  # noqa: E402

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="creating symlinks needs a privilege on Windows"
)


def texts(n: int) -> list[str]:
    return [f"named text {i}" for i in range(n)]


def other_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str = ".npy"
) -> dict[str, Callable[[], str]]:
    """Ways to name ``tmp_path/data/v<suffix>`` (links made when first called)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (tmp_path / "a").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)

    def link() -> str:
        alias = tmp_path / f"link{suffix}"
        if not alias.is_symlink():
            alias.symlink_to(Path("data") / f"v{suffix}")  # relative; dangling until written
        return str(alias)

    def link_chain() -> str:
        first = Path(link())
        chain = tmp_path / f"chain{suffix}"
        if not chain.is_symlink():
            chain.symlink_to(first.name)
        return str(chain)

    return {
        "relative": lambda: f"data/v{suffix}",
        "absolute": lambda: str(data / f"v{suffix}"),
        "dotdot": lambda: f"a/../data/v{suffix}",
        "symlink": link,
        "symlink-chain": link_chain,
    }


PAIRS = [
    ("relative", "absolute"),
    ("absolute", "relative"),
    ("relative", "dotdot"),
    pytest.param("absolute", "symlink", marks=needs_symlinks),
    pytest.param("symlink", "relative", marks=needs_symlinks),
    pytest.param("symlink-chain", "absolute", marks=needs_symlinks),
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_the_lock_of_one_name_refuses_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    names = other_names(tmp_path, monkeypatch)
    held = OutputLock.acquire(resolve_output(Path(names[first]())))
    try:
        with pytest.raises(InvalidArgumentValueError, match="in use by another run") as caught:
            OutputLock.acquire(resolve_output(Path(names[second]())))
        assert caught.value.argument == "output"
    finally:
        held.release()
    again = OutputLock.acquire(resolve_output(Path(names[second]())))  # free once released
    again.release()


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
@pytest.mark.parametrize(("first", "second"), PAIRS)
@pytest.mark.parametrize("inner", ["sync", "async"])
def test_a_second_run_through_another_name_is_refused_before_it_sends(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    first: str,
    second: str,
    inner: str,
    suffix: str,
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    names = other_names(tmp_path, monkeypatch, suffix)
    corpus = texts(12)
    refusals: list[BaseException] = []
    with LocalServer() as server:

        def progress(event: ProgressEvent) -> None:
            if refusals:
                return
            before = server.stats.requests
            try:
                create_many(server, inner, texts(3), output=names[second](), resume=True)
            except BaseException as exc:
                refusals.append(exc)
            refusals.append(AssertionError(server.stats.requests - before))

        result = create_many(
            server,
            "sync",
            corpus,
            output=names[first](),
            batch_size=4,
            max_concurrency=1,
            progress=progress,
        )
    refused, sent = refusals
    assert isinstance(refused, InvalidArgumentValueError) and refused.argument == "output"
    assert "in use by another run" in str(refused)
    assert str(sent) == "0"  # the refused run sent nothing (max_concurrency=1: none in flight)
    assert result.count == 12
    real = tmp_path / "data" / f"v{suffix}"
    # Everything beside the file itself: no lock, checkpoint or record beside a link.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        f"v{suffix}",
        f"v{suffix}.done.json",
    ]
    assert not any(p.name.endswith((".lock", ".json")) for p in tmp_path.iterdir())
    for alias in ("link", "chain"):  # a link stays a link, to the finished file
        path = tmp_path / f"{alias}{suffix}"
        if path.is_symlink():
            assert path.resolve() == real.resolve()
    if suffix == ".npy":
        np.testing.assert_allclose(np.load(real), expected(corpus), atol=1e-6)
    else:
        import pyarrow.parquet as pq

        got = np.array(pq.read_table(real).column("embedding").to_pylist(), dtype=np.float32)
        np.testing.assert_allclose(got, expected(corpus), atol=1e-6)


@needs_symlinks
def test_a_run_through_a_link_is_resumed_through_the_files_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = other_names(tmp_path, monkeypatch)
    corpus = texts(20)

    class Stop(Exception):
        pass

    def stop(event: ProgressEvent) -> None:
        if event.requests >= 2:
            raise Stop

    with LocalServer() as server:
        with pytest.raises(Stop):
            create_many(
                server,
                "sync",
                corpus,
                output=names["symlink"](),
                batch_size=5,
                max_concurrency=1,
                progress=stop,
            )
        assert (tmp_path / "data" / "v.npy.checkpoint.json").exists()
        resumed = create_many(server, "async", corpus, output=names["absolute"](), resume=True)
        assert 0 < resumed.resumed < 20
        sent = server.stats.requests
        # Finished: resuming through the link again is a no-op.
        again = create_many(server, "sync", corpus, output=names["symlink"](), resume=True)
        assert again.already_complete and server.stats.requests == sent
    assert again.output == Path(names["symlink"]())  # the result names the output as given
    np.testing.assert_allclose(np.load(tmp_path / "data" / "v.npy"), expected(corpus), atol=1e-6)


def test_resolve_output_keeps_names_without_a_link(tmp_path: Path) -> None:
    # Not a link: the name as given, whatever its spelling (its folder is the file's folder).
    for name in (Path("v.npy"), tmp_path / "v.npy", tmp_path / "a" / ".." / "v.npy"):
        assert resolve_output(name) == name


@needs_symlinks
def test_resolve_output_follows_links_to_the_file(tmp_path: Path) -> None:
    real = tmp_path / "data" / "v.npy"
    real.parent.mkdir()
    link = tmp_path / "link.npy"
    link.symlink_to(real)  # dangling: the file does not exist yet
    assert resolve_output(link) == Path(os.path.realpath(real))
    chain = tmp_path / "chain.npy"
    chain.symlink_to(link)
    assert resolve_output(chain) == Path(os.path.realpath(real))
