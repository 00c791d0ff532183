"""Per-viewpoint panorama features: ``(scan, viewpoint) -> float32 [36, D]``.

The one entry point is :func:`open_features`; the read-only store interface lives in
:mod:`envs.features.store`, the formats in :mod:`envs.features.hdf5` (HAMT / DUET / ScaleVLN
layout, read and write) and :mod:`envs.features.tsv` (the legacy R2R-EnvDrop / CLIP-ViL TSV,
read and convert); what a file records about its encoder, and when two sets of features
are the same kind, in :mod:`envs.features.provenance`; one writer per file in
:mod:`envs.features.lock`. The angle features that go with them (EnvDrop's ``[sin h, cos h,
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
from envs.features.lock import LOCK_SUFFIX, WriterLock
from envs.features.provenance import FeatureProvenance, check_provenance
from envs.features.store import (
    DEFAULT_CACHE_SIZE,
    MAX_FEATURE_DIM,
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
    "LOCK_SUFFIX",
    "MAX_FEATURE_DIM",
    "PARTIAL_SUFFIX",
    "TSV_SUFFIXES",
    "WRITER_DTYPES",
    "FeatureProvenance",
    "FeatureStore",
    "HDF5FeatureStore",
    "HDF5FeatureWriter",
    "Key",
    "TSVFeatureStore",
    "WriterLock",
    "check_feature_shape",
    "check_provenance",
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
    *,
    feature_columns: int | None = None,
) -> FeatureStore:
    """Open a feature file by its suffix: ``.h5`` / ``.hdf5`` (HDF5) or ``.tsv`` (legacy TSV).

    ``feature_dim`` is the width expected (default: the stored one): features of another
    width are refused, never cut. ``feature_columns=N`` asks for the first N columns of
    features at least N wide instead (public releases that store extra columns after the
    visual feature). ``cache_size`` bounds how many viewpoints are kept in memory. A
    missing, unreadable or damaged file, or features of the wrong shape or type, raise
    :class:`DataError`. The store's ``attrs`` say how the features were made (see
    :mod:`envs.features.provenance`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return HDF5FeatureStore(path, feature_dim, cache_size, feature_columns=feature_columns)
    if suffix in TSV_SUFFIXES:
        return TSVFeatureStore(path, feature_dim, cache_size, feature_columns=feature_columns)
    if not path.exists():
        raise DataError(path, "file not found")
    expected = ", ".join(HDF5_SUFFIXES + TSV_SUFFIXES)
    raise DataError(path, f"unknown feature file type {suffix or '(none)'!r}, expected {expected}")
