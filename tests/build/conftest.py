"""Fixtures of the build tests: the real FA2 sdist (tests/build/sdist.py)."""

from tests.build.sdist import fa2_sdist, fa2_tree

__all__ = ["fa2_sdist", "fa2_tree"]
