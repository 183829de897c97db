"""Dask helpers around `Embedder` (``pip install "aligneai[dask]"``).

    import dask.dataframe as dd
    from aligneai.integrations.dask import embed_dataframe

    ddf = dd.read_parquet("corpus/")                    # a "text" column
    out = embed_dataframe(ddf, workers=4, tokens_per_minute=1_000_000, dimensions=256)
    out.to_parquet("vectors/")

Each partition is embedded by ``create_many`` on a Dask worker; the key is read there from
``ALIGNEAI_API_KEY``. ``workers`` is how many partitions run at once in the whole cluster
(worker processes x threads each): every one keeps to its share of the budgets.
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


def embed_dataframe(ddf: Any, embedder: Embedder | None = None, **settings: Any) -> Any:
    """``ddf`` with an embedding column added to every partition (lazy, like any Dask frame).

    Give an `Embedder`, or its keyword arguments. The new column holds one float32 numpy
    array per row (object dtype, as pandas has no fixed-size list type).
    """
    pd = importlib.import_module("pandas")  # comes with dask.dataframe

    embedder = _embedder(embedder, settings)
    meta = ddf._meta.copy()  # private-ok: the empty frame Dask keeps as every partition's model
    meta[embedder.embedding_column] = pd.Series([], dtype=object, index=meta.index)
    return ddf.map_partitions(embedder, meta=meta)


def _embed_partition(texts: Any, embedder: Embedder) -> list[Any]:
    return list(embedder.embed_texts(texts))


def embed_bag(bag: Any, embedder: Embedder | None = None, **settings: Any) -> Any:
    """A bag of the float32 vectors of a bag of texts, item for item (lazy)."""
    embedder = _embedder(embedder, settings)
    return bag.map_partitions(_embed_partition, embedder)
