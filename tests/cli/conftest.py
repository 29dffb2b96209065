"""The CLI tests reuse the installer tests' session venv with the CPU torch (a user's environment)."""

from tests.install.conftest import torch_venv  # noqa: F401
