"""The read-only feature-store interface shared by the HDF5 and TSV formats.

A store maps ``(scan, viewpoint)`` to a float32 array ``[36, D]``: row ``i`` is
discretized view ``i`` (``view_heading(i)``, ``view_elevation(i)`` in
:mod:`envs.constants`). Stores are lazy: each :meth:`FeatureStore.get` reads one
viewpoint from disk and keeps it in a bounded LRU cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from envs.constants import NUM_VIEWS
from envs.errors import DataError

#: Default number of viewpoints kept in a store's LRU cache.
DEFAULT_CACHE_SIZE = 4096

#: A viewpoint: ``(scan, viewpoint_id)``.
Key = tuple[str, str]


def feature_key(scan: str, viewpoint: str) -> str:
    """The name of a viewpoint in a feature file: ``"{scan}_{viewpoint}"``."""
    return f"{scan}_{viewpoint}"


def split_feature_key(name: str) -> Key:
    """Inverse of :func:`feature_key` (viewpoint ids are hex, so split at the last ``_``)."""
    scan, _, viewpoint = name.rpartition("_")
    return scan, viewpoint


def shape_text(shape: Sequence[int]) -> str:
    """``(36, 512)`` -> ``"[36, 512]"``, the way error messages write shapes."""
    return "[" + ", ".join(str(n) for n in shape) + "]"


def check_feature_shape(
    path: Path, name: str, shape: Sequence[int], feature_dim: int, exact: bool = False
) -> None:
    """Raise :class:`DataError` unless ``shape`` is ``[36, >=feature_dim]`` (``exact``: ``==``)."""
    wide_enough = len(shape) == 2 and (
        shape[1] == feature_dim if exact else shape[1] >= feature_dim
    )
    if not wide_enough or shape[0] != NUM_VIEWS:
        raise DataError(
            path,
            f"features of {name} have shape {shape_text(shape)}, "
            f"expected {shape_text((NUM_VIEWS, feature_dim))}",
        )


class FeatureStore:
    """Read-only mapping ``(scan, viewpoint) -> float32 [36, feature_dim]`` with an LRU cache.

    Formats implement :meth:`_load`, :meth:`_has`, :meth:`_keys` and :meth:`_close`.
    Arrays returned by :meth:`get` are shared with the cache and read-only: copy one
    before changing it. Use a store as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: Path, feature_dim: int, cache_size: int) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        #: The file the features are read from.
        self.path = path
        #: Number of columns :meth:`get` returns (``D``).
        self.feature_dim = feature_dim
        #: Most viewpoints kept in memory (0: no cache).
        self.cache_size = cache_size
        #: Number of :meth:`get` calls answered from the cache, and read from the file.
        self.cache_hits = 0
        self.cache_misses = 0
        self._cache: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._closed = False

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        """Features of one viewpoint: float32 ``[36, feature_dim]``.

        Raises :class:`DataError` when the file has no features for the viewpoint or
        they have the wrong shape.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the feature store is closed")
        key = (scan, viewpoint)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            self._cache.move_to_end(key)
            return cached
        self.cache_misses += 1
        stored = self._load(scan, viewpoint)
        if stored is None:
            raise DataError(self.path, f"no features for viewpoint {feature_key(scan, viewpoint)}")
        features = np.ascontiguousarray(stored, dtype=np.float32)  # [36, D]
        features.flags.writeable = False
        if self.cache_size > 0:
            self._cache[key] = features
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return features

    @property
    def num_cached(self) -> int:
        """Number of viewpoints held in the cache now (never more than ``cache_size``)."""
        return len(self._cache)

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2):
            return False
        return self._has(str(key[0]), str(key[1]))

    def keys(self) -> Iterator[Key]:
        """All ``(scan, viewpoint)`` pairs in the file, in file order."""
        return iter(self._keys())

    def __iter__(self) -> Iterator[Key]:
        return self.keys()

    def __len__(self) -> int:
        return len(self._keys())

    def close(self) -> None:
        """Release the file and empty the cache (idempotent)."""
        if not self._closed:
            self._closed = True
            self._cache.clear()
            self._close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, feature_dim={self.feature_dim})"

    # What a format implements.
    def _load(self, scan: str, viewpoint: str) -> np.ndarray | None:
        """The stored ``[36, feature_dim]`` array (shape checked), or None when absent."""
        raise NotImplementedError

    def _has(self, scan: str, viewpoint: str) -> bool:
        raise NotImplementedError

    def _keys(self) -> Sequence[Key]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
