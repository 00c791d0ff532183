"""The tiny synthetic world under the name these tests use (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_world(tiny_synthetic_world: Path) -> Path:
    """Data root of the ``tiny`` preset, seed 0 (read-only for tests: copy before writing)."""
    return tiny_synthetic_world
