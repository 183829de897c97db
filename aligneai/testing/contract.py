"""Contract tests: the API's OpenAPI 3.1 document, its schemas, and a strict converter.

``openapi.json`` (package data of `aligneai.core`) describes the REST API v1 that the models,
the converter and the local test server implement. This module only reads it; it validates
nothing itself, so the kit needs no JSON Schema library. Pair it with one::

    from jsonschema import Draft202012Validator
    from aligneai.testing.contract import schema_for

    Draft202012Validator(schema_for("CreateEmbeddingResponse")).validate(payload)

`strict_converter` structures the models like the client's converter but rejects fields the
models do not know, which catches drift between the models and a server (or the document).
The client itself never uses any of this: it lives here, not in the runtime core.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any

import cattrs

from aligneai.core.converter import make_converter

__all__ = ["JSON_SCHEMA_DIALECT", "load_openapi", "schema_for", "strict_converter"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The ``$schema`` of every schema `schema_for` returns (JSON Schema draft 2020-12)."""
_COMPONENT_PREFIX = "#/components/schemas/"
_DEFS_PREFIX = "#/$defs/"


@lru_cache(maxsize=1)
def _document_text() -> str:
    # The document stays package data of the core (the wire contract ships with it); only the
    # code that reads it lives in the testing kit.
    return files("aligneai.core").joinpath("openapi.json").read_text(encoding="utf-8")


def load_openapi() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the API (a fresh copy each call: safe to mutate)."""
    document: dict[str, Any] = json.loads(_document_text())
    return document


def _rewrite_refs(node: Any, found: set[str]) -> Any:
    """Copy ``node`` with component ``$ref``s pointed at ``$defs``; collect the names used."""
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_COMPONENT_PREFIX):
                name = value[len(_COMPONENT_PREFIX) :]
                found.add(name)
                result[key] = _DEFS_PREFIX + name
            else:
                result[key] = _rewrite_refs(value, found)
        return result
    if isinstance(node, list):
        return [_rewrite_refs(item, found) for item in node]
    return node


def schema_for(name: str) -> dict[str, Any]:
    """Return a self-contained JSON Schema (draft 2020-12) for the component schema ``name``.

    The component's ``$ref``s to other components point into the result's own ``$defs``, which
    holds every component it needs (directly or not), so any 2020-12 validator can use it alone.
    Raises `KeyError` (naming the known components) for an unknown ``name``.
    """
    components: dict[str, Any] = load_openapi()["components"]["schemas"]
    if name not in components:
        raise KeyError(f"no component schema {name!r}; known: {', '.join(sorted(components))}")
    used: set[str] = set()
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT}
    schema.update(_rewrite_refs(components[name], used))
    defs: dict[str, Any] = {}
    pending = sorted(used)
    while pending:
        dependency = pending.pop()
        if dependency in defs:
            continue
        if dependency not in components:
            raise KeyError(f"component {name!r} refers to a missing schema {dependency!r}")
        more: set[str] = set()
        defs[dependency] = _rewrite_refs(components[dependency], more)
        pending.extend(sorted(more - defs.keys()))
    if defs:
        schema["$defs"] = dict(sorted(defs.items()))
    return schema


@cache
def strict_converter() -> cattrs.Converter:
    """A converter of the models that also rejects unknown fields (built once).

    The client's converter ignores fields it does not know, since the server may add some; a
    contract test wants the opposite, to notice when the models and the wire drift apart.
    """
    return make_converter(strict=True)
