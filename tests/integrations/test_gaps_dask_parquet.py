"""Dask: ``embed_dataframe(...).to_parquet(path)`` works (closing-note gap).

The helper's embedding column was an object column (one numpy array per row); dask infers a
parquet schema from the frame's meta, where an object column holds a placeholder with no Arrow
type, so ``to_parquet`` failed. The column is now a pyarrow ``list<float32>``
(``pandas.ArrowDtype``), in the meta and in every partition. Checked on a real LocalCluster
(worker processes, so the partition function and the embedder are pickled), row by row against
the deterministic embedder, reading the files back with pyarrow and with dask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

from aligneai.integrations.dask import embed_dataframe  # noqa: E402
from aligneai.testing import LocalServer  # noqa: E402

from ._common import DIMS, KEY, check_rows, corpus  # noqa: E402

LIST_OF_FLOAT32 = pa.list_(pa.float32())


def read_back(path: Path) -> tuple[list[str], Any]:
    """(texts, vectors) of a parquet folder, in the order of its ``n`` column (pyarrow only)."""
    table = pq.read_table(path).sort_by("n")
    assert table.schema.field("embedding").type.value_type == pa.float32()
    return table.column("text").to_pylist(), table.column("embedding").to_pylist()


# dask's read_parquet calls pandas methods that pandas 3.1 deprecates (their code, not ours).
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index is deprecated")
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index is deprecated")
def test_to_parquet_writes_the_embedding_column_as_a_list_of_float32(
    dask_client: Any, tmp_path: Path
) -> None:
    texts = corpus(90)
    frame = pd.DataFrame({"text": texts, "n": np.arange(90)})
    ddf = dd.from_pandas(frame, npartitions=4)
    with LocalServer(api_key=KEY) as server:
        out = embed_dataframe(ddf, base_url=server.url, dimensions=DIMS, batch_size=16)
        assert out.dtypes["embedding"] == pd.ArrowDtype(LIST_OF_FLOAT32)  # the meta
        out.to_parquet(tmp_path / "vectors")  # failed in dask's schema inference before
        assert server.stats.inputs == 90  # each text embedded once
    files = sorted((tmp_path / "vectors").glob("*.parquet"))
    assert len(files) == 4  # one per partition
    schema = pq.read_schema(files[0])
    assert schema.field("embedding").type == LIST_OF_FLOAT32
    got_texts, vectors = read_back(tmp_path / "vectors")
    assert got_texts == texts
    check_rows(texts, vectors)
    # dask reads it back too (with pyarrow dtypes: see docs/at-scale.md for why)
    again = dd.read_parquet(tmp_path / "vectors", dtype_backend="pyarrow").compute()
    again = again.sort_values("n")
    check_rows(texts, np.stack(again["embedding"].to_numpy()))


def test_computed_partitions_have_the_declared_dtype_and_a_float32_matrix(dask_client: Any) -> None:
    texts = corpus(30)
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    with LocalServer(api_key=KEY) as server:
        out = embed_dataframe(ddf, base_url=server.url, dimensions=DIMS)
        frame = out.compute()
    assert frame["embedding"].dtype == out.dtypes["embedding"]  # meta and data agree
    matrix = np.stack(frame["embedding"].to_numpy())
    assert matrix.dtype == np.float32 and matrix.shape == (30, DIMS)
    assert frame["text"].tolist() == texts
    check_rows(texts, matrix)
    assert isinstance(frame["embedding"].iloc[0], list)  # one value: a list of its floats


def test_an_empty_partition_writes_too(dask_client: Any, tmp_path: Path) -> None:
    texts = corpus(20)
    frame = pd.DataFrame({"text": texts, "n": np.arange(20)})
    # Partition 0 (rows 0-9) keeps nothing: an empty partition among full ones.
    ddf = dd.from_pandas(frame, npartitions=2)
    ddf = ddf[ddf["n"] >= 10]
    with LocalServer(api_key=KEY) as server:
        embed_dataframe(ddf, base_url=server.url, dimensions=DIMS).to_parquet(tmp_path / "v")
        assert server.stats.inputs == 10
    got_texts, vectors = read_back(tmp_path / "v")
    assert got_texts == texts[10:]
    check_rows(texts[10:], vectors)
