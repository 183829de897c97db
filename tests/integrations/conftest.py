"""The engine and framework tests run only in their own env: ``tox -e integrations``.

Ray, Dask, pandas, LangChain and LlamaIndex are heavy and move fast, so the main suite (every
other tox env, ``make test``'s py3x runs) does not collect this folder at all, rather than
skipping tests in it; the integrations env opts in with ``ALIGNEAI_INTEGRATIONS=1`` and installs
``requirements/integrations.txt``. Run it by hand with
``ALIGNEAI_INTEGRATIONS=1 pytest tests/integrations`` in such an environment.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("ALIGNEAI_INTEGRATIONS") == "1" else ["test_*.py"]
