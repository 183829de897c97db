"""Deprecated: the OpenAPI loader moved to `aligneai.testing.contract`; this module goes away.

Only contract tests read the document, so the code that reads it left the runtime core.
Importing this module warns `DeprecationWarning` and hands out the same functions as the new one.
"""

from __future__ import annotations

import warnings

# The one import of the kit from the core, allowed by tools/check_architecture.py for this
# deprecated module only (it is what keeps the old import path working).
from aligneai.testing.contract import JSON_SCHEMA_DIALECT, load_openapi, schema_for

__all__ = ["JSON_SCHEMA_DIALECT", "load_openapi", "schema_for"]

warnings.warn(
    "aligneai.core.contract is deprecated; import from aligneai.testing.contract instead",
    DeprecationWarning,
    stacklevel=2,
)
