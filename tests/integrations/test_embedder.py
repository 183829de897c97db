"""`Embedder` on its own: batch formats, pickling without the key, budgets, argument checks."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from aligneai import InvalidArgumentTypeError, InvalidArgumentValueError, MissingAPIKeyError
from aligneai.integrations import Embedder
from aligneai.testing import LocalServer

from ._common import DIMS, KEY, check_rows, corpus, embedding_requests, expected


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    monkeypatch.setenv("ALIGNEAI_API_KEY", KEY)
    with LocalServer(api_key=KEY) as server:
        yield server


def make(server: LocalServer, **kwargs: Any) -> Embedder:
    kwargs.setdefault("dimensions", DIMS)
    return Embedder(base_url=server.url, **kwargs)


def test_import_aligneai_loads_no_engine_or_framework() -> None:
    code = (
        "import sys, aligneai, aligneai.bulk, aligneai.integrations\n"
        "heavy = ('ray', 'dask', 'distributed', 'pandas', 'pyarrow', 'numpy', 'langchain',\n"
        "         'langchain_core', 'llama_index')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    # cwd elsewhere: the repo root would shadow the installed package (see tox.ini).
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pickle_holds_settings_never_the_key_nor_a_client(server: LocalServer) -> None:
    embedder = make(server, requests_per_minute=600, workers=3, text_column="body")
    embedder(pa.table({"body": ["warm the client up"]}))  # a client now exists in this process
    data = pickle.dumps(embedder)
    assert KEY.encode() not in data
    assert b"AligneAI" not in data  # no client object travels
    clone = pickle.loads(data)
    assert clone == embedder and clone.settings() == embedder.settings()
    assert clone.worker_requests_per_minute == 200.0
    assert KEY not in repr(embedder)


def test_the_key_is_read_on_the_worker_at_the_first_call(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALIGNEAI_API_KEY")
    embedder = make(server)  # building it needs no key: the driver may not have one
    with pytest.raises(MissingAPIKeyError, match="ALIGNEAI_API_KEY"):
        embedder({"text": np.array(["x"], dtype=object)})
    assert embedding_requests(server) == []
    monkeypatch.setenv("WORKER_KEY", KEY)
    other = make(server, api_key_env="WORKER_KEY")
    out = other({"text": np.array(["found with the other variable"], dtype=object)})
    check_rows(["found with the other variable"], out["embedding"])
    monkeypatch.delenv("WORKER_KEY")
    with pytest.raises(MissingAPIKeyError, match="NOPE_KEY"):
        make(server, api_key_env="NOPE_KEY")({"text": ["x"]})


def test_pyarrow_table_gets_a_fixed_size_float32_list_column(server: LocalServer) -> None:
    texts = corpus(37)
    table = pa.table({"id": list(range(37)), "text": texts})
    out = make(server, batch_size=8)(table)
    assert out.column_names == ["id", "text", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), DIMS)
    assert out.column("id").to_pylist() == list(range(37))
    check_rows(texts, np.array(out.column("embedding").to_pylist()))
    assert len(embedding_requests(server)) == 5  # ceil(37 / 8)
    # An existing embedding column is replaced, in place.
    again = make(server)(out)
    assert again.column_names == ["id", "text", "embedding"]
    check_rows(texts, np.array(again.column("embedding").to_pylist()))


def test_pandas_frame_gets_one_float32_array_per_row(server: LocalServer) -> None:
    texts = corpus(20)
    frame = pd.DataFrame({"text": texts, "n": range(20)}, index=range(100, 120))
    out = make(server)(frame)
    assert list(out.columns) == ["text", "n", "embedding"]
    assert list(out.index) == list(range(100, 120))  # the partition's index is kept
    assert all(v.dtype == np.float32 and v.shape == (DIMS,) for v in out["embedding"])
    check_rows(texts, np.stack(out["embedding"].tolist()))
    assert "embedding" not in frame.columns  # the input frame is not changed


def test_dict_of_numpy_arrays_gets_a_matrix(server: LocalServer) -> None:
    texts = corpus(9)
    batch = {"text": np.array(texts, dtype=object), "n": np.arange(9)}
    out = make(server, embedding_column="vec")(batch)
    assert set(out) == {"text", "n", "vec"}
    assert out["vec"].dtype == np.float32 and out["vec"].shape == (9, DIMS)
    check_rows(texts, out["vec"])
    assert np.array_equal(out["n"], np.arange(9))


def test_empty_batch_keeps_the_column_type(server: LocalServer) -> None:
    out = make(server)(pa.table({"text": pa.array([], pa.string())}))
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), DIMS)
    assert out.num_rows == 0
    assert embedding_requests(server) == []


def test_embed_texts_for_a_bag_partition(server: LocalServer) -> None:
    texts = corpus(5)
    assert np.array_equal(make(server).embed_texts(iter(texts)), expected(texts))


def test_each_worker_keeps_to_its_share_of_the_budgets(server: LocalServer) -> None:
    embedder = make(server, requests_per_minute=120, tokens_per_minute=9000, workers=4)
    assert embedder.worker_requests_per_minute == 30.0
    assert embedder.worker_tokens_per_minute == 2250.0
    assert make(server).worker_requests_per_minute is None


def test_one_client_per_process_and_settings(server: LocalServer) -> None:
    a, b = make(server), make(server, dimensions=4)
    old = a.client()
    assert b.client() is old  # model and dimensions are per call, not per client
    assert pickle.loads(pickle.dumps(a)).client() is old  # a task's fresh copy reuses it
    a.close()
    new = a.client()
    assert new is not old and b.client() is new
    a.close()


def test_timeout_left_out_keeps_the_clients_none_lifts_the_read_limit(
    server: LocalServer,
) -> None:
    from aligneai import NOT_GIVEN, Timeout

    default = make(server)
    assert default.timeout is NOT_GIVEN
    assert default.client().timeout == Timeout()
    default.close()
    unlimited = make(server, timeout=None)
    assert unlimited.client().timeout.read is None
    unlimited.close()
    three = pickle.loads(pickle.dumps(make(server, timeout=3)))
    assert three.client().timeout.read == 3.0
    three.close()
    assert pickle.loads(pickle.dumps(default)).timeout is NOT_GIVEN


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"workers": 0}, InvalidArgumentValueError, "workers"),
        ({"workers": 1.5}, InvalidArgumentTypeError, "workers"),
        ({"dimensions": 0}, InvalidArgumentValueError, "dimensions"),
        ({"requests_per_minute": -1}, InvalidArgumentValueError, "requests_per_minute"),
        ({"tokens_per_minute": "many"}, InvalidArgumentTypeError, "tokens_per_minute"),
        ({"batch_size": 4096}, InvalidArgumentValueError, "batch_size"),
        ({"text_column": 3}, InvalidArgumentTypeError, "text_column"),
        ({"embedding_column": "text"}, InvalidArgumentValueError, "embedding_column"),
        ({"model": ""}, InvalidArgumentValueError, "model"),
        ({"timeout": 0}, InvalidArgumentValueError, "timeout"),
    ],
)
def test_bad_settings_are_refused_in_the_driver(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    with pytest.raises(error) as info:
        Embedder(**kwargs)
    assert info.value.argument == argument  # type: ignore[attr-defined]


def test_bad_batches_name_the_column_or_row(server: LocalServer) -> None:
    embedder = make(server)
    with pytest.raises(InvalidArgumentValueError, match="no column 'text'") as info:
        embedder(pa.table({"body": ["x"]}))
    assert info.value.argument == "text_column"
    with pytest.raises(InvalidArgumentTypeError) as type_info:
        embedder({"text": np.array(["ok", None], dtype=object)})
    assert type_info.value.argument == "text[1]"
    with pytest.raises(InvalidArgumentTypeError) as batch_info:
        embedder(["a list is not a batch"])
    assert batch_info.value.argument == "batch"
    assert embedding_requests(server) == []


def test_pickled_embedder_in_another_process_reads_its_own_environment(
    server: LocalServer, tmp_path: Any
) -> None:
    path = tmp_path / "embedder.pkl"
    path.write_bytes(pickle.dumps(make(server)))
    code = (
        "import pickle, sys, numpy as np\n"
        f"e = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "out = e({'text': np.array(['from a child process'], dtype=object)})\n"
        "print(','.join(repr(float(x)) for x in out['embedding'][0]))\n"
    )
    env = {**os.environ, "ALIGNEAI_API_KEY": KEY}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    row = np.array([float(x) for x in out.stdout.strip().split(",")], dtype=np.float32)
    check_rows(["from a child process"], row)


def test_a_workers_budget_holds_across_its_batches(server: LocalServer) -> None:
    # 120 requests per minute: a bucket of one minute's worth, refilled at 2 per second. A
    # worker that drained it on one batch must wait for the refill on the next: with a fresh
    # budget per batch (one create_many per call) the second batch would go out at once.
    embedder = make(server, requests_per_minute=240, workers=2, batch_size=1)
    embedder(pa.table({"text": corpus(120)}))  # the whole minute's worth, in a burst
    start = time.monotonic()
    out = embedder(pa.table({"text": ["one more", "and another"]}))
    waited = time.monotonic() - start
    check_rows(["one more", "and another"], np.array(out.column("embedding").to_pylist()))
    # (Part of the refill happens during the burst itself, hence the margin.)
    assert waited >= 0.5  # 2 requests at 2 per second: about 1 s after the burst
    # Another thread is another worker (Dask runs one task per thread): its own share.
    other = pickle.loads(pickle.dumps(embedder))
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(_timed(other, "a third worker")))
    thread.start()
    thread.join(10)
    assert result and result[0] < 0.5


def _timed(embedder: Embedder, text: str) -> float:
    start = time.monotonic()
    embedder({"text": [text]})
    return time.monotonic() - start
