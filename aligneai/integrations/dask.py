"""Dask helpers around `Embedder` (``pip install "aligneai[dask]"``).

    import dask.dataframe as dd
    from aligneai.integrations.dask import embed_dataframe

    ddf = dd.read_parquet("corpus/")                    # a "text" column
    out = embed_dataframe(ddf, workers=4, tokens_per_minute=1_000_000, dimensions=256)
    out.to_parquet("vectors/")                          # "embedding": a list of float32

Each partition is embedded by ``create_many`` on a Dask worker; the key is read there from
``ALIGNEAI_API_KEY``. ``workers`` is how many partitions run at once in the whole cluster
(worker processes x threads each): every one keeps to its share of the budgets.

The embedding column of `embed_dataframe` is a pyarrow ``list<float32>`` column
(``pandas.ArrowDtype``), declared so in the frame's meta: ``to_parquet`` infers its schema from
the meta, and an object column (one numpy array per row) has no Arrow type it can infer.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from aligneai.core.errors import MissingDependencyError

from ._embedder import Embedder

if importlib.util.find_spec("dask") is None:  # pragma: no cover - installed where tested
    raise MissingDependencyError(
        'aligneai.integrations.dask needs dask: pip install "aligneai[dask]"'
    )

__all__ = ["embed_bag", "embed_dataframe"]


def _embedder(embedder: Embedder | None, settings: dict[str, Any]) -> Embedder:
    if embedder is None:
        return Embedder(**settings)
    if not isinstance(embedder, Embedder):
        from aligneai.core.errors import InvalidArgumentTypeError

        raise InvalidArgumentTypeError(
            "embedder", f"expected an aligneai.integrations.Embedder, got {type(embedder).__name__}"
        )
    if settings:
        from aligneai.core.errors import InvalidArgumentValueError

        raise InvalidArgumentValueError(
            "embedder", f"give an Embedder or its settings, not both (got {sorted(settings)})"
        )
    return embedder


def _embedding_dtype() -> Any:
    """The dtype of `embed_dataframe`'s embedding column: ``list<float32>`` of pyarrow.

    ``pandas.ArrowDtype(pyarrow.list_(pyarrow.float32()))``, which ``to_parquet`` writes as a
    parquet list of float32; ``object`` (one float32 numpy array per row) where pandas has no
    ``ArrowDtype`` or pyarrow is missing (``dask[dataframe]`` 2025.1+ brings both).
    """
    pd = importlib.import_module("pandas")  # comes with dask.dataframe
    arrow_dtype = getattr(pd, "ArrowDtype", None)
    if arrow_dtype is None or getattr(pd.arrays, "ArrowExtensionArray", None) is None:
        return object  # pragma: no cover - pandas < 1.5
    try:
        pa = importlib.import_module("pyarrow")
    except ImportError:  # pragma: no cover - dask.dataframe needs pyarrow
        return object
    return arrow_dtype(pa.list_(pa.float32()))


def embed_dataframe(ddf: Any, embedder: Embedder | None = None, **settings: Any) -> Any:
    """``ddf`` with an embedding column added to every partition (lazy, like any Dask frame).

    Give an `Embedder`, or its keyword arguments. The new column holds a pyarrow
    ``list<float32>`` per row (``pandas.ArrowDtype``), so that ``.to_parquet(path)`` writes it
    as a parquet list of float32. Of a computed frame, ``np.stack(frame["embedding"].to_numpy())``
    is the float32 ``(rows, dimensions)`` matrix; one value alone (``frame["embedding"][i]``)
    is a Python list of its floats.
    """
    pd = importlib.import_module("pandas")  # comes with dask.dataframe

    embedder = _embedder(embedder, settings)
    dtype = _embedding_dtype()
    meta = ddf._meta.copy()  # private-ok: the empty frame Dask keeps as every partition's model
    meta[embedder.embedding_column] = pd.Series([], dtype=dtype, index=meta.index)
    return ddf.map_partitions(_embed_frame, embedder, dtype is not object, meta=meta)


def _embed_frame(frame: Any, embedder: Embedder, arrow: bool) -> Any:
    """One partition: the embedder's frame, its vectors turned into a pyarrow list column."""
    out = embedder(frame)
    if not arrow:  # pragma: no cover - see _embedding_dtype
        return out
    np = importlib.import_module("numpy")
    pa = importlib.import_module("pyarrow")
    pd = importlib.import_module("pandas")
    vectors = out[embedder.embedding_column].tolist()
    width = len(vectors[0]) if vectors else 0
    matrix = np.stack(vectors) if vectors else np.empty((0, 0), dtype=np.float32)
    # One list per row, [i * width, (i + 1) * width) of the flat float32 values.
    offsets = pa.array(np.arange(len(vectors) + 1, dtype=np.int64) * width, type=pa.int32())
    values = pa.array(matrix.reshape(-1).astype(np.float32, copy=False), type=pa.float32())
    column = pa.ListArray.from_arrays(offsets, values)
    out[embedder.embedding_column] = pd.Series(
        pd.arrays.ArrowExtensionArray(column), index=out.index
    )
    return out


def _embed_partition(texts: Any, embedder: Embedder) -> list[Any]:
    return list(embedder.embed_texts(texts))


def embed_bag(bag: Any, embedder: Embedder | None = None, **settings: Any) -> Any:
    """A bag of the float32 vectors of a bag of texts, item for item (lazy)."""
    embedder = _embedder(embedder, settings)
    return bag.map_partitions(_embed_partition, embedder)
