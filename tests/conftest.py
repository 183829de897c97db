"""Hypothesis profiles: ``HYPOTHESIS_PROFILE`` picks one; otherwise ``ci`` when ``CI`` is set."""

import os

from hypothesis import settings

# No deadlines: the machines have 2 cores, and a loaded one must not turn slowness into failure.
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
