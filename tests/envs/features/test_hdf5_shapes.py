"""HDF5FeatureWriter beyond panoramas: datasets of other shapes, chosen by name suffix."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.errors import DataError
from envs.features.hdf5 import HDF5FeatureWriter

SHAPES = {"": (4,), ".grid": (6, 3)}


def test_shapes_by_suffix_are_written_checked_and_resumed(tmp_path: Path) -> None:
    out = tmp_path / "images.h5"
    rng = np.random.default_rng(0)
    pooled, grid = rng.random(4, np.float32), rng.random((6, 3), np.float32)
    writer = HDF5FeatureWriter(out, 4, dtype="float32", shapes=SHAPES)
    assert writer.shape_of("a.grid") == (6, 3) and writer.shape_of("a") == (4,)
    writer.add_dataset("a", pooled)
    writer.add_dataset("a.grid", grid)
    with pytest.raises(DataError, match=r"features of b.grid have shape \[4\], expected \[6, 3\]"):
        writer.add_dataset("b.grid", pooled)
    writer.abandon()

    resumed = HDF5FeatureWriter(out, 4, dtype="float32", resume=True, shapes=SHAPES)
    assert resumed.done() == {"a", "a.grid"}
    resumed.close()
    with h5py.File(out, "r") as file:
        np.testing.assert_array_equal(file["a"][()], pooled)
        np.testing.assert_array_equal(file["a.grid"][()], grid)


def test_default_shape_is_the_panorama(tmp_path: Path) -> None:
    writer = HDF5FeatureWriter(tmp_path / "f.h5", 8)
    assert writer.shape_of("scan_vp") == (36, 8)
    with pytest.raises(DataError, match=r"have shape \[8\], expected \[36, 8\]"):
        writer.add_dataset("scan_vp", np.zeros(8))
    writer.discard()
    with pytest.raises(ValueError, match="shapes"):
        HDF5FeatureWriter(tmp_path / "g.h5", 8, shapes={"": (0, 3)})
