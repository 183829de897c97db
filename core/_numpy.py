"""numpy is optional (the ``aligneai[numpy]`` extra): import it once, on first use only."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["require_numpy"]


@cache
def require_numpy() -> Any:
    """Return the numpy module, or raise an ImportError that says how to install it."""
    try:
        import numpy
    except ImportError:
        raise ImportError(
            'numpy is needed for this feature: pip install "aligneai[numpy]"'
        ) from None
    return numpy
