"""The ``aligneai`` logger: opt-in stderr output, and a filter that scrubs credentials."""

from __future__ import annotations

import logging
import os
import re

__all__ = ["RedactingFilter", "logger", "setup_logging"]

logger = logging.getLogger("aligneai")

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",}]+")


class RedactingFilter(logging.Filter):
    """Replaces any ``Bearer <token>`` in a record's final message with ``Bearer ***``.

    The library never logs headers, but a user's own log call on our logger (or a future
    change) must not leak a key either: this is the belt to the braces.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "earer" in message:
            record.msg = _BEARER.sub(r"\1***", message)
            record.args = None
        return True


def setup_logging() -> None:
    """Install the redacting filter; with ``ALIGNEAI_LOG=info|debug`` add a stderr handler."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    level = os.environ.get("ALIGNEAI_LOG", "").strip().lower()
    if level not in ("info", "debug"):
        return
    if not any(getattr(h, "_aligneai_env_handler", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._aligneai_env_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(
            logging.Formatter("[%(asctime)s - %(name)s:%(lineno)d - %(levelname)s] %(message)s")
        )
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
