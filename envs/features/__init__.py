"""Per-viewpoint panorama features: ``(scan, viewpoint) -> float32 [36, D]``.

The one entry point is :func:`open_features`; the read-only store interface lives in
:mod:`envs.features.store`, the formats in :mod:`envs.features.hdf5` (HAMT / DUET / ScaleVLN
layout, read and write) and :mod:`envs.features.tsv` (the legacy R2R-EnvDrop / CLIP-ViL TSV,
read and convert). The angle features that go with them (EnvDrop's ``[sin h, cos h,
sin e, cos e]`` x 32 of each view and candidate direction) are in :mod:`envs.features.angles`.

Example::

    with open_features("features/clip_vit_b16.h5", feature_dim=512) as store:
        views = store.get(scan, viewpoint)  # float32 [36, 512]
"""

from __future__ import annotations

import os
from pathlib import Path

from envs.errors import DataError
from envs.features.hdf5 import (
    PARTIAL_SUFFIX,
    WRITER_DTYPES,
    HDF5FeatureStore,
    HDF5FeatureWriter,
)
from envs.features.store import (
    DEFAULT_CACHE_SIZE,
    FeatureStore,
    Key,
    check_feature_shape,
    feature_key,
    split_feature_key,
)
from envs.features.tsv import TSVFeatureStore, convert_tsv_to_hdf5, encode_tsv_line

#: Suffixes of HDF5 feature files and of legacy TSV feature files.
HDF5_SUFFIXES = (".h5", ".hdf5")
TSV_SUFFIXES = (".tsv",)

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "HDF5_SUFFIXES",
    "PARTIAL_SUFFIX",
    "TSV_SUFFIXES",
    "WRITER_DTYPES",
    "FeatureStore",
    "HDF5FeatureStore",
    "HDF5FeatureWriter",
    "Key",
    "TSVFeatureStore",
    "check_feature_shape",
    "convert_tsv_to_hdf5",
    "encode_tsv_line",
    "feature_key",
    "open_features",
    "split_feature_key",
]


def open_features(
    path: str | os.PathLike[str],
    feature_dim: int | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> FeatureStore:
    """Open a feature file by its suffix: ``.h5`` / ``.hdf5`` (HDF5) or ``.tsv`` (legacy TSV).

    ``feature_dim`` selects the first ``feature_dim`` columns (default: all stored ones);
    ``cache_size`` bounds how many viewpoints are kept in memory. A missing or unreadable
    file, or features that are not ``[36, >=feature_dim]``, raise :class:`DataError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return HDF5FeatureStore(path, feature_dim, cache_size)
    if suffix in TSV_SUFFIXES:
        return TSVFeatureStore(path, feature_dim, cache_size)
    if not path.exists():
        raise DataError(path, "file not found")
    expected = ", ".join(HDF5_SUFFIXES + TSV_SUFFIXES)
    raise DataError(path, f"unknown feature file type {suffix or '(none)'!r}, expected {expected}")
