"""Issue 12 item 5: without numpy, ``to_numpy()`` and ``create_matrix()`` raise
`MissingDependencyError` naming ``aligneai[numpy]`` (before anything is sent), as the async client
does without aiohttp. numpy is hidden by a meta-path hook in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    class HideNumpy:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, HideNumpy())

    import asyncio
    import aligneai
    from aligneai import AligneAI, AsyncAligneAI, MissingDependencyError
    from aligneai.core.models import CreateEmbeddingResponse, Embedding, Usage

    def check(call, what):
        try:
            call()
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, aligneai.APIError), what
            assert 'aligneai[numpy]' in str(exc), (what, str(exc))
            print(what, "ok")
        else:
            raise AssertionError(f"{what}: no error")

    usage = Usage(prompt_tokens=1, total_tokens=1)
    item = Embedding(index=0, embedding=[0.5])
    response = CreateEmbeddingResponse(data=[item], model="m", usage=usage)
    check(response.to_numpy, "to_numpy")
    # A closed port: if anything were sent, the error would be a connection error instead.
    client = AligneAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    check(lambda: client.embeddings.create_matrix(inputs=["a"]), "create_matrix")

    async def main():
        async with AsyncAligneAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0) as c:
            await c.embeddings.create_matrix(inputs=["a"])

    check(lambda: asyncio.run(main()), "async create_matrix")
    assert "numpy" not in sys.modules
    """
)


def test_without_numpy_the_error_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [
        "to_numpy ok",
        "create_matrix ok",
        "async create_matrix ok",
    ]
