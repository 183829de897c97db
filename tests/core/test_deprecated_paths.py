"""Module paths that moved (issue #13 item 5) still import, warn, and hand out the new objects."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

# old module -> (new module, names it re-exports)
MOVED = {
    "aligneai.core.streaming": (
        "aligneai.core.embedding_stream",
        ["EmbeddingStreamDecoder", "assemble_response", "contract_of"],
    ),
    "aligneai.core.contract": (
        "aligneai.testing.contract",
        ["JSON_SCHEMA_DIALECT", "load_openapi", "schema_for"],
    ),
}


@pytest.fixture
def fresh_import() -> Iterator[None]:
    """Forget the deprecated modules around a test, so that importing them runs (and warns)."""
    saved = {name: sys.modules.pop(name) for name in MOVED if name in sys.modules}
    yield
    for name in MOVED:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


@pytest.mark.usefixtures("fresh_import")
@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_re_exports(old: str) -> None:
    new, names = MOVED[old]
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")) as caught:
        module = importlib.import_module(old)
    assert len(caught) == 1
    target = importlib.import_module(new)
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name) is getattr(target, name), name


def test_strict_converter_in_the_core_warns_and_still_rejects_unknown_fields() -> None:
    import cattrs

    from aligneai.core.converter import strict_converter
    from aligneai.core.models import Usage

    with pytest.warns(DeprecationWarning, match=r"aligneai\.testing\.contract\.strict_converter"):
        converter = strict_converter()
    assert converter.structure({"prompt_tokens": 1, "total_tokens": 2}, Usage) == Usage(
        prompt_tokens=1, total_tokens=2
    )
    with pytest.raises(cattrs.ClassValidationError):
        converter.structure({"prompt_tokens": 1, "total_tokens": 2, "extra": 0}, Usage)
