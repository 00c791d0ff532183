"""Shared fixtures: the real R2R data beside the checkout (never skipped)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def real_data_root() -> Path:
    """``../shared/r2r_real`` beside the checkout, or ``$CLIPVIL_R2R_REAL``."""
    override = os.environ.get("CLIPVIL_R2R_REAL")
    root = Path(override) if override else REPO_ROOT.parent / "shared" / "r2r_real"
    if not (root / "connectivity").is_dir():
        raise RuntimeError(
            f"real R2R data not found at {root}: put the shared data beside the checkout "
            "or set CLIPVIL_R2R_REAL (the real-data tests are never skipped)"
        )
    return root


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    return real_data_root()


#: Seed of the tiny synthetic world every test directory shares.
TINY_WORLD_SEED = 0


@pytest.fixture(scope="session")
def tiny_synthetic_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root of the synthetic ``tiny`` preset, seed 0, built once per session (seconds).

    Read-only for tests: copy it before writing into it.
    """
    from envs.synthetic.writer import build_world

    out = tmp_path_factory.mktemp("tiny_synthetic_world")
    build_world(out, preset="tiny", seed=TINY_WORLD_SEED, workers=1)
    return out


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one intra-op torch thread (restored after).

    On a small shared CPU, two OpenMP threads per test process spin against each other and
    against the other processes: tiny models then run 10-30x slower than on one thread.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
