"""numpy is optional (the ``aligneai[numpy]`` extra): import it once, on first use only."""

from __future__ import annotations

from functools import cache
from typing import Any

from .errors import MissingDependencyError

__all__ = ["require_numpy"]


@cache
def require_numpy() -> Any:
    """Return numpy, or raise `MissingDependencyError` (an `ImportError`) naming the extra."""
    try:
        import numpy
    except ImportError as exc:
        raise MissingDependencyError(
            'numpy is needed for this feature: pip install "aligneai[numpy]"'
        ) from exc
    return numpy
