"""Collect the interpreter facts sent as ``X-AligneAI-*`` headers.

This is the one place the core looks at the running system; it is called by the facade when a
client is created, never implicitly by the request builders.
"""

from __future__ import annotations

import platform as _platform

from .request import PlatformInfo

__all__ = ["current_platform"]


def current_platform() -> PlatformInfo:
    """Describe the running interpreter and machine."""
    return PlatformInfo(
        os=_platform.system() or "unknown",
        arch=_platform.machine() or "unknown",
        runtime=_platform.python_implementation(),
        runtime_version=_platform.python_version(),
    )
