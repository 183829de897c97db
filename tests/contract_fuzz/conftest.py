"""The schemathesis fuzz of the local server runs only in its own env: ``tox -e schemathesis``.

schemathesis needs a newer hypothesis than the suite's lowest pin, so the main suite (every other
tox env, ``make test``) does not collect this folder at all, rather than skipping a test in it;
the schemathesis env opts in with ``ALIGNEAI_CONTRACT_FUZZ=1`` and installs
``requirements/schemathesis.txt``. Run it by hand with
``ALIGNEAI_CONTRACT_FUZZ=1 pytest tests/contract_fuzz`` in such an environment.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("ALIGNEAI_CONTRACT_FUZZ") == "1" else ["test_*.py"]
