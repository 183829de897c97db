"""``make demo``: the README's usage example, run against the bundled local server.

Starts the local AligneAI server on a free port of 127.0.0.1, runs ``get_embeddings.py`` (the
product README's example, verbatim) with ``ALIGNEAI_BASE_URL`` / ``ALIGNEAI_API_KEY`` pointing
at it, then a short similarity demo, and stops the server whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aligneai.testing import LocalServer

HERE = Path(__file__).resolve().parent


def main() -> int:
    with LocalServer() as server:
        env = dict(os.environ, ALIGNEAI_BASE_URL=server.url, ALIGNEAI_API_KEY="demo-key")
        print(f"== Local AligneAI server at {server.url}\n", flush=True)
        print("== examples/get_embeddings.py (the README's usage example, verbatim)\n", flush=True)
        # cwd is the examples folder: the repository root would shadow the installed package.
        status = subprocess.call([sys.executable, "get_embeddings.py"], cwd=HERE, env=env)
        if status != 0:
            return status
        print("\n== examples/similarity.py\n", flush=True)
        status = subprocess.call([sys.executable, "similarity.py"], cwd=HERE, env=env)
        print(f"\n== The server answered {len(server.requests)} requests; stopping it.")
        return status


if __name__ == "__main__":
    sys.exit(main())
