"""A tiny synthetic world, built once per test session (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envs.synthetic.writer import build_world

TINY_SEED = 0


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root of the ``tiny`` preset, seed 0 (read-only for tests: copy before writing)."""
    out = tmp_path_factory.mktemp("tiny_world")
    build_world(out, preset="tiny", seed=TINY_SEED, workers=1)
    return out
