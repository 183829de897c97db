"""A griffe extension for the API reference: split grouped parameters in ``Args:`` sections.

Some docstrings of the package document several parameters on one line, as readers do::

    Args:
        timeout, max_retries: override the client's settings for this call.

Google style (griffe's parser) has one name per entry, so it would warn that a parameter named
``timeout, max_retries`` is not in the signature, and ``mkdocs build --strict`` would fail. This
extension rewrites such an entry, before parsing, into one entry per name with the same
description. Nothing else changes, and a genuinely unknown parameter still fails the build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Other Parameters):\s*$"
)
_NAMES = r"\*{0,2}[A-Za-z_][A-Za-z0-9_]*"
_GROUPED = re.compile(rf"^({_NAMES}(?:\s*,\s*{_NAMES})+)\s*(\([^)]*\))?\s*:(.*)$")


def split_grouped_params(text: str) -> str:
    """Return ``text`` with every grouped ``a, b: ...`` entry of an args section split."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        section = _SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if not section:
            continue
        base = len(section.group(1))
        item_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if stripped and indent <= base:
                break  # the section ended
            if not stripped:
                out.append(line)
                i += 1
                continue
            if item_indent is None:
                item_indent = indent
            if indent != item_indent:
                out.append(line)  # a continuation line of the previous entry
                i += 1
                continue
            # An entry: its names may run over several lines until the colon.
            head, j = stripped, i
            while ":" not in head and head.endswith(",") and j + 1 < len(lines):
                j += 1
                head = f"{head} {lines[j].strip()}"
            grouped = _GROUPED.match(head)
            if not grouped:
                out.append(line)
                i += 1
                continue
            names = [name.strip() for name in grouped.group(1).split(",")]
            kind = f" {grouped.group(2)}" if grouped.group(2) else ""
            description = grouped.group(3)
            k = j + 1
            continuation: list[str] = []
            while k < len(lines):
                more = lines[k]
                more_indent = len(more) - len(more.lstrip())
                if more.strip() and more_indent <= item_indent:
                    break
                continuation.append(more)
                k += 1
            while continuation and not continuation[-1].strip():
                continuation.pop()
                k -= 1
            pad = " " * item_indent
            for name in names:
                out.append(f"{pad}{name}{kind}:{description}")
                out.extend(continuation)
            i = k
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    """Split grouped parameter entries of every docstring before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is loaded."""
        if obj.docstring is not None:
            obj.docstring.value = split_grouped_params(obj.docstring.value)
