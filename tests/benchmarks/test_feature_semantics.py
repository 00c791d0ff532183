"""benchmarks/feature_semantics.py: R^2 of features from a synthetic world's view labels."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.constants import NUM_VIEWS
from envs.graph import NavGraphs
from vln_agent.pretrain.data import load_captioned_views, load_view_labels

FEATURE_SIZE = 12


@pytest.fixture(scope="module")
def semantics(load_benchmark):
    return load_benchmark("feature_semantics")


def write_features(path: Path, world: Path, semantics, noise: float, seed: int) -> Path:
    """Features = labels @ W + noise for captioned views, pure noise for the other views."""
    rng = np.random.default_rng(seed)
    views = load_captioned_views(world, tuple(NavGraphs(world).scans))
    labels = semantics.label_matrix(load_view_labels(world, views), "test")
    weights = rng.standard_normal((labels.shape[1], FEATURE_SIZE))
    signal = labels @ weights  # [N, D]
    panoramas: dict[str, np.ndarray] = {}
    graphs = NavGraphs(world)
    for scan in graphs.scans:
        for viewpoint in graphs[scan].viewpoint_ids:
            panoramas[f"{scan}_{viewpoint}"] = rng.standard_normal((NUM_VIEWS, FEATURE_SIZE))
    for view, row in zip(views, signal, strict=True):
        clean = row + noise * rng.standard_normal(FEATURE_SIZE)
        panoramas[f"{view.scan}_{view.viewpoint}"][view.view_index] = clean
    with h5py.File(path, "w") as f:
        for key, value in panoramas.items():
            f[key] = value.astype(np.float32)  # [36, D]
    return path


def test_labels_explain_label_made_features_and_not_noise(
    semantics, tiny_synthetic_world, tmp_path, capsys
):
    world = tiny_synthetic_world
    exact = write_features(tmp_path / "exact.h5", world, semantics, noise=0.0, seed=0)
    noisy = write_features(tmp_path / "noisy.h5", world, semantics, noise=2.0, seed=1)
    noise = write_features(tmp_path / "noise.h5", world, semantics, noise=100.0, seed=2)
    files = {"exact": exact, "noisy": noisy, "noise": noise}
    scores = semantics.label_r_squared(world, files, ("val_unseen",))
    assert scores["exact"]["train"] == pytest.approx(1.0)
    # the tiny world's held-out houses have object categories its train houses lack
    assert 0.9 < scores["exact"]["val_unseen"] <= 1.0
    assert 0.2 < scores["noisy"]["train"] < 0.95 and 0.1 < scores["noisy"]["val_unseen"] < 0.95
    assert scores["noise"]["val_unseen"] < 0.05 < scores["noisy"]["val_unseen"]

    argv = ["--data", str(world), f"exact={exact}", f"missing={tmp_path / 'missing.h5'}"]
    assert semantics.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.h5" in err[0]
    assert semantics.main(["--data", str(world), f"exact={exact}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| exact | 1.000 | ")
