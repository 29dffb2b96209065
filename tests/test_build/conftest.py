"""Fixtures of the build tests: the real FA2 sdist (tests/test_build/sdist.py; pytest never collects a folder named build)."""

from tests.test_build.sdist import fa2_pristine, fa2_sdist, fa2_tree

__all__ = ["fa2_pristine", "fa2_sdist", "fa2_tree"]
