"""`Embedder`: a picklable batch embedder for the workers of Ray Data, Dask and the like.

It holds settings only. The client is built on the worker at the first call, from the
environment there (``ALIGNEAI_API_KEY``, and ``ALIGNEAI_BASE_URL`` when ``base_url`` is not
given), so the key never travels with the pickled object. One client per worker process and
settings is cached at module level: Dask unpickles the function for every task, and a client
per partition would open a connection pool per partition.

Importing this module imports nothing outside the standard library and aligneai: the batch
formats are recognised through ``sys.modules`` (a pyarrow table can only exist when pyarrow is
already imported), and numpy / pyarrow / pandas are imported at the call.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aligneai.core.bulk import validate_bulk_arguments
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.sentinels import NOT_GIVEN, NotGiven
from aligneai.core.wire import MAX_INPUTS

from ._carry import RateSlot, create_many

if TYPE_CHECKING:
    import numpy as np

    from aligneai._client import AligneAI
    from aligneai.bulk import BulkResult

__all__ = ["Embedder"]

# (pid, settings) -> client. The pid guards against a forked child reusing its parent's sockets.
_CLIENTS: dict[tuple[Any, ...], AligneAI] = {}
_CLIENTS_LOCK = threading.Lock()
# (pid, thread, settings) -> the rate state of this worker's previous call (see `_carry`).
# Per thread: Dask runs one task per worker thread, each thread is one of the `workers`.
_RATES: dict[tuple[Any, ...], RateSlot] = {}

_SETTINGS = (
    "model",
    "dimensions",
    "requests_per_minute",
    "tokens_per_minute",
    "workers",
    "text_column",
    "embedding_column",
    "base_url",
    "api_key_env",
    "batch_size",
    "max_batch_tokens",
    "max_concurrency",
    "timeout",
)


def _optional_str(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a str or None, got {type(value).__name__}")
    if value == "":
        raise InvalidArgumentValueError(name, "must not be empty")
    return value


def _str(value: object, name: str) -> str:
    checked = _optional_str(value, name)
    if checked is None:
        raise InvalidArgumentTypeError(name, "expected a str, got None")
    return checked


def _positive_int(value: object, name: str, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(name, f"expected a positive int, got {type(value).__name__}")
    if value < 1:
        raise InvalidArgumentValueError(name, f"must be a positive int, got {value}")
    return value


def _positive_seconds(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentTypeError(
            name, f"expected seconds (a number), got {type(value).__name__}"
        )
    if not value > 0:
        raise InvalidArgumentValueError(name, f"must be positive, got {value}")
    return float(value)


class Embedder:
    """Embeds the text column of a batch, on an engine's worker, at its share of a rate limit.

    ``embedder(batch)`` takes a batch in the formats Ray Data and Dask hand over (a pyarrow
    ``Table``, a pandas ``DataFrame``, or a dict of columns such as numpy arrays) and returns the
    same kind of batch with every column kept and ``embedding_column`` added (replaced when it
    exists): a fixed-size list of float32 in a pyarrow table, a float32 ``(rows, dimensions)``
    array in a dict, one float32 array per row in a pandas frame. Row ``i`` of the output is the
    embedding of the text in row ``i``. The batch is embedded with
    ``client.embeddings.create_many`` (batching, retries, 429 holds, adaptive concurrency).

    Ray Data builds one per worker from the class and its keyword arguments (each actor
    mostly waits on the API: ``num_cpus=0.25`` leaves CPUs to the read and write tasks)::

        ds.map_batches(Embedder, fn_constructor_kwargs={"workers": 4, ...}, concurrency=4,
                       num_cpus=0.25, batch_size=1024, batch_format="pyarrow")

    Dask pickles an instance with the function: ``ddf.map_partitions(Embedder(...), meta=...)``,
    or `aligneai.integrations.dask.embed_dataframe`.

    Args:
        model: the model id (None: the server's default).
        dimensions: truncate vectors to this many dimensions. Give it when batches may be empty,
            so that an empty batch's column has the same type as the others.
        requests_per_minute, tokens_per_minute: the WHOLE job's budgets: each worker keeps to
            ``budget / workers``, and the server's ``x-ratelimit-*`` headers and 429s (which
            every worker's bulk scheduler follows) absorb the rest.
        workers: how many workers run at once (Ray's ``concurrency``, Dask's worker threads in
            all); divides the budgets.
        text_column: the column holding the texts (non-empty strings).
        embedding_column: the column to write.
        base_url: the API's URL (None: ``ALIGNEAI_BASE_URL`` on the worker, then the default).
        api_key_env: the environment variable holding the key on the worker.
        batch_size: the most texts per request (1 to 2048).
        max_batch_tokens: the most estimated tokens per request.
        max_concurrency: requests in flight per worker (None: adaptive).
        timeout: seconds per request; None: no read limit; left out (`NOT_GIVEN`): the
            client's default.

    Every argument is checked here, in the driver, before the job starts. The instance pickles
    to its settings (never a key, never a client); `close` releases this process's client.
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        dimensions: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        workers: int = 1,
        text_column: str = "text",
        embedding_column: str = "embedding",
        base_url: str | None = None,
        api_key_env: str = "ALIGNEAI_API_KEY",
        batch_size: int = MAX_INPUTS,
        max_batch_tokens: int | None = None,
        max_concurrency: int | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> None:
        self.model = _optional_str(model, "model")
        self.dimensions = _positive_int(dimensions, "dimensions", allow_none=True)
        self.workers: int = _positive_int(workers, "workers", allow_none=False) or 1
        validate_bulk_arguments(
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            on_error="raise",
        )
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.text_column = _str(text_column, "text_column")
        self.embedding_column = _str(embedding_column, "embedding_column")
        if self.text_column == self.embedding_column:
            raise InvalidArgumentValueError(
                "embedding_column", "must differ from text_column (the texts would be replaced)"
            )
        self.base_url = _optional_str(base_url, "base_url")
        self.api_key_env = _str(api_key_env, "api_key_env")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_concurrency = max_concurrency
        self.timeout: float | NotGiven | None = (
            timeout if timeout is NOT_GIVEN else _positive_seconds(timeout, "timeout")
        )

    # -- settings ----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The constructor's keyword arguments (for ``fn_constructor_kwargs``)."""
        return {name: getattr(self, name) for name in _SETTINGS}

    def __getstate__(self) -> dict[str, Any]:
        # Settings only: the client lives in the module cache of each process.
        return self.settings()

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        Embedder.__init__(self, **state)  # re-validated on the worker

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if v is not None)
        return f"Embedder({shown})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Embedder):
            return NotImplemented
        return self.settings() == other.settings()

    def __hash__(self) -> int:
        return hash(tuple(self.settings().items()))

    @property
    def worker_requests_per_minute(self) -> float | None:
        """This worker's share of ``requests_per_minute``."""
        rpm = self.requests_per_minute
        return None if rpm is None else rpm / self.workers

    @property
    def worker_tokens_per_minute(self) -> float | None:
        """This worker's share of ``tokens_per_minute``."""
        tpm = self.tokens_per_minute
        return None if tpm is None else tpm / self.workers

    # -- the client, built on the worker ------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        return (os.getpid(), self.base_url, self.api_key_env, self.timeout)

    def client(self) -> AligneAI:
        """This process's client for these settings, built at the first call."""
        key = self._key()
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                from aligneai._client import AligneAI

                kwargs: dict[str, Any] = {"base_url": self.base_url}
                if self.timeout is not NOT_GIVEN:
                    kwargs["timeout"] = self.timeout
                # None when unset: the client raises MissingAPIKeyError naming the variable.
                api_key = os.environ.get(self.api_key_env) or None
                if api_key is None and self.api_key_env != "ALIGNEAI_API_KEY":
                    from aligneai.core.errors import MissingAPIKeyError

                    raise MissingAPIKeyError(
                        f"No API key: set the {self.api_key_env} environment variable on the "
                        "workers."
                    )
                client = AligneAI(api_key, **kwargs)
                _CLIENTS[key] = client
            return client

    def close(self) -> None:
        """Close this process's client for these settings (a later call builds a new one)."""
        with _CLIENTS_LOCK:
            client = _CLIENTS.pop(self._key(), None)
            for key in [k for k in _RATES if k[: len(self._key())] == self._key()]:
                del _RATES[key]
        if client is not None:
            client.close()

    # -- embedding ----------------------------------------------------------------------------

    def embed(self, texts: Iterable[str]) -> BulkResult:
        """Embed ``texts`` like ``create_many``, at this worker's share of the budgets.

        The rate state (budgets, the server's limits learned from its headers, the
        concurrency window, a 429 hold) carries over from this worker's previous call.
        """
        key = (*self._key(), threading.get_ident(), *self._rate_settings())
        slot = _RATES.setdefault(key, RateSlot())
        return create_many(
            self.client(),
            texts,
            slot,
            model=self.model,
            dimensions=self.dimensions,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.worker_requests_per_minute,
            tokens_per_minute=self.worker_tokens_per_minute,
            on_error="raise",
            progress=False,
        )

    def _rate_settings(self) -> tuple[Any, ...]:
        return (
            self.worker_requests_per_minute,
            self.worker_tokens_per_minute,
            self.max_concurrency,
        )

    def embed_texts(self, texts: Iterable[str]) -> np.ndarray[Any, Any]:
        """The float32 ``(n, dimensions)`` matrix of ``texts`` (e.g. a Dask bag's partition)."""
        return self._matrix(list(texts))

    def _matrix(self, texts: Sequence[object]) -> np.ndarray[Any, Any]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgumentTypeError(
                    f"{self.text_column}[{i}]",
                    f"expected a str, got {type(text).__name__}",
                )
        result = self.embed(texts)  # type: ignore[arg-type] # all str, checked above
        matrix = result.matrix
        assert matrix is not None  # in memory: always a matrix
        if matrix.shape[0] == 0 and self.dimensions is not None:
            matrix = matrix.reshape(0, self.dimensions)
        return matrix

    def __call__(self, batch: Any) -> Any:
        """Embed ``batch``'s text column; the same kind of batch comes back, one column added."""
        pa = sys.modules.get("pyarrow")
        if pa is not None and isinstance(batch, pa.Table):
            return self._call_arrow(pa, batch)
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(batch, pd.DataFrame):
            return self._call_pandas(batch)
        if isinstance(batch, Mapping):
            return self._call_mapping(batch)
        raise InvalidArgumentTypeError(
            "batch",
            "expected a pyarrow Table, a pandas DataFrame or a dict of columns, got "
            f"{type(batch).__name__}",
        )

    def _column(self, batch: Any, names: Iterable[str]) -> None:
        if self.text_column not in names:
            raise InvalidArgumentValueError(
                "text_column",
                f"the batch has no column {self.text_column!r} (columns: {sorted(names)})",
            )

    def _call_arrow(self, pa: Any, table: Any) -> Any:
        self._column(table, table.column_names)
        matrix = self._matrix(table.column(self.text_column).to_pylist())
        width = int(matrix.shape[1])
        values = pa.array(matrix.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(values, width)
        if self.embedding_column in table.column_names:
            index = table.column_names.index(self.embedding_column)
            return table.set_column(index, self.embedding_column, column)
        return table.append_column(self.embedding_column, column)

    def _call_pandas(self, frame: Any) -> Any:
        self._column(frame, [str(name) for name in frame.columns])
        matrix = self._matrix(frame[self.text_column].tolist())
        out = frame.copy()
        # One float32 vector per row (object column): pandas has no fixed-size list type.
        out[self.embedding_column] = list(matrix)
        return out

    def _call_mapping(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        self._column(batch, [str(name) for name in batch])
        texts = batch[self.text_column]
        matrix = self._matrix(texts.tolist() if hasattr(texts, "tolist") else list(texts))
        out = dict(batch)
        out[self.embedding_column] = matrix
        return out
