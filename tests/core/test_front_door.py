"""`aligneai.core` re-exports what a driver on another event loop needs (issue #13 item 5)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import aligneai.core

# Where each public name is defined: the front door must hand out the very same objects.
HOMES = {
    "aligneai.core.body": ["BodyBuffer"],
    "aligneai.core.errors": ["APIError"],
    "aligneai.core.failures": [
        "ConnectError",
        "ConnectTimeout",
        "ReadError",
        "ReadTimeout",
        "TransportError",
    ],
    "aligneai.core.flow": [
        "Action",
        "Flow",
        "FlowResult",
        "Outcome",
        "PreparedCall",
        "ReadBody",
        "Send",
        "Sleep",
        "prepare_call",
        "request_flow",
    ],
    "aligneai.core.models": ["CreateEmbeddingResponse", "Model", "ModelList"],
    "aligneai.core.operations": [
        "CallOptions",
        "Operation",
        "create_embedding_matrix",
        "create_embeddings",
        "list_models",
        "retrieve_model",
    ],
    "aligneai.core.options": ["ClientOptions", "Timeout", "resolve_options"],
    "aligneai.core.parsing": ["parse_model"],
    "aligneai.core.request": ["Request", "base_headers"],
    "aligneai.core.response": ["ResponseHead"],
    "aligneai.core.sentinels": ["NOT_GIVEN", "NotGiven"],
    "aligneai.core.system": ["current_platform"],
}


def test_the_front_door_exports_each_name_from_its_home() -> None:
    expected = sorted(name for names in HOMES.values() for name in names)
    assert sorted(aligneai.core.__all__) == expected
    for module_name, names in HOMES.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(aligneai.core, name) is getattr(module, name), name


def test_the_drivers_use_the_cores_flow_type() -> None:
    from aligneai.transports import async_driver, sync_driver

    assert sync_driver.Flow is aligneai.core.Flow
    assert async_driver.Flow is aligneai.core.Flow


def test_importing_the_core_loads_no_io_library() -> None:
    code = (
        "import sys, aligneai.core; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'urllib3', 'numpy', 'ssl', 'socket') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "[]"
