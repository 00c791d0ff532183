"""Shared fixtures of the vln_agent tests: tiny random-init CLIP encoders (CPU, no downloads)
and a tiny training world (a few real R2R scans with random panorama features)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from envs.constants import NUM_VIEWS
from envs.fileio import read_json, write_json
from envs.graph import NavGraphs
from vln_agent.encoders import CLIPEncoder, create_encoder

#: Seed of the random init, so that every test sees the same tiny weights.
TINY_ENCODER_SEED = 0


@pytest.fixture
def tiny_encoder() -> CLIPEncoder:
    """``clipvil-tiny``: a ViT CLIP (32 px, patch 8, E = 32), random init, eval mode."""
    torch.manual_seed(TINY_ENCODER_SEED)
    return create_encoder("clipvil-tiny")


@pytest.fixture
def tiny_resnet_encoder() -> CLIPEncoder:
    """``clipvil-tiny-rn``: a ModifiedResNet CLIP (64 px, E = 32), random init, eval mode."""
    torch.manual_seed(TINY_ENCODER_SEED)
    return create_encoder("clipvil-tiny-rn")


# --------------------------------------------------------------- tiny training world
#: Small real val_seen scans (34-48 viewpoints, 12 R2R paths = 36 instructions in all).
TINY_SCANS = ("Pm6F8kyY3z2", "17DRP5sb8fy", "jh4fc5c5qoQ")
#: Visual feature size D of the tiny world's random features.
TINY_FEATURE_SIZE = 16
#: R2R paths of the tiny world that make its val_seen / val_unseen splits (4 each).
TINY_EVAL_PATHS = 4


@dataclass(frozen=True)
class TinyWorld:
    """A data root built from a few real scans, with random panorama features."""

    #: ``connectivity/`` of :data:`TINY_SCANS` and ``R2R_{train,val_seen,val_unseen}.json``.
    data_dir: Path
    #: HDF5 features in the HAMT layout: ``f"{scan}_{viewpoint}"`` -> float32 ``[36, D]``.
    features: Path
    feature_size: int
    scans: tuple[str, ...]


def write_random_features(
    path: Path,
    data_dir: Path,
    scans: tuple[str, ...],
    feature_size: int,
    seed: int = 0,
    skip: tuple[str, ...] = (),
) -> Path:
    """Random ``[36, D]`` features of every viewpoint of ``scans`` (but ``skip``) at ``path``."""
    graphs = NavGraphs(data_dir)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for scan in scans:
            for viewpoint in graphs[scan].viewpoint_ids:
                if viewpoint in skip:
                    continue
                f[f"{scan}_{viewpoint}"] = rng.standard_normal(
                    (NUM_VIEWS, feature_size), dtype=np.float32
                )  # [36, D]
    return path


def build_tiny_world(real_data_dir: Path, root: Path) -> TinyWorld:
    """Copy the graphs of :data:`TINY_SCANS` and split their real R2R paths into
    train (all of them), val_seen (the first few) and val_unseen (the last few)."""
    (root / "connectivity").mkdir(parents=True)
    for scan in TINY_SCANS:
        name = f"{scan}_connectivity.json"
        shutil.copy(real_data_dir / "connectivity" / name, root / "connectivity" / name)
    entries = read_json(real_data_dir / "R2R_val_seen.json")
    tiny = sorted((e for e in entries if e["scan"] in TINY_SCANS), key=lambda e: e["path_id"])
    write_json(root / "R2R_train.json", tiny)
    write_json(root / "R2R_val_seen.json", tiny[:TINY_EVAL_PATHS])
    write_json(root / "R2R_val_unseen.json", tiny[-TINY_EVAL_PATHS:])
    features = write_random_features(
        root / "features.h5", root, TINY_SCANS, TINY_FEATURE_SIZE, seed=0
    )
    return TinyWorld(root, features, TINY_FEATURE_SIZE, TINY_SCANS)


@pytest.fixture(scope="session")
def tiny_world(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    """Three real scans, 36 real instructions, random D = 16 features (read-only: copy
    or write beside it, never into it)."""
    return build_tiny_world(real_data_dir, tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture
def make_features() -> Callable[..., Path]:
    """``make_features(path, data_dir, scans, feature_size, seed=0, skip=())`` writes a
    random-feature HDF5 file (``skip``: viewpoints left out)."""
    return write_random_features
