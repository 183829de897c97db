"""Helpers of the integration tests: a corpus, the expected vectors, the checks of every row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aligneai.testing import LocalServer, embed

DIMS = 16
KEY = "sk-integration-test-key-0123456789"


def corpus(n: int) -> list[str]:
    """``n`` distinct texts (the row number is in each, so a misplaced row is seen)."""
    topics = ("harbour cranes", "violin strings", "glacier ice", "tax forms", "sourdough bread")
    return [f"document {i} about {topics[i % len(topics)]}, part {i // 7}" for i in range(n)]


def expected(texts: Sequence[str], dims: int = DIMS) -> Any:
    """The deterministic embedder's vectors: what the local server answers, worked out apart."""
    return np.array([embed(text, dims) for text in texts], dtype=np.float32).reshape(-1, dims)


def check_rows(texts: Sequence[str], vectors: Any, dims: int = DIMS) -> None:
    """Every text once, each with its own vector (compared exactly: float32 end to end)."""
    assert len(texts) == len(set(texts)), "a row was duplicated"
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(texts), dims)
    assert np.array_equal(matrix, expected(texts, dims))


def embedding_requests(server: LocalServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/embeddings")]


def allowed_requests(rpm: int, seconds: float) -> int:
    """The most requests a bucket of 1/6 minute's worth refilled at rpm/60 admits in ``seconds``."""
    return max(1, rpm // 6) + math.ceil(rpm / 60 * seconds)
