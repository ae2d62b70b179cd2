"""Test-wide settings: hypothesis is derandomized so that `make test` is deterministic.

Set HYPOTHESIS_PROFILE=explore to search with fresh random examples (and more of them).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
