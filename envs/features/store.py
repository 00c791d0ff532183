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

#: Widest feature accepted (R2R's widest public features have 2048 + a few columns); a wider
#: shape is a damaged file, and reading it would exhaust memory.
MAX_FEATURE_DIM = 1 << 16

#: A viewpoint: ``(scan, viewpoint_id)``.
Key = tuple[str, str]
#: Root attributes a store exposes (how the features were made), as plain Python values.
Attrs = dict[str, str | int | float]


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
    path: Path, name: str, shape: Sequence[int], feature_dim: int, columns: bool = False
) -> None:
    """Raise :class:`DataError` unless ``shape`` is ``[36, feature_dim]``.

    ``columns``: the caller reads the first ``feature_dim`` columns, so ``[36, >=feature_dim]``
    is enough (an explicit ``feature_columns``). Widths above :data:`MAX_FEATURE_DIM` (a
    damaged header) are refused either way.
    """
    shape = tuple(int(n) for n in shape)
    width_ok = len(shape) == 2 and (shape[1] >= feature_dim if columns else shape[1] == feature_dim)
    if not width_ok or shape[0] != NUM_VIEWS or not 0 < shape[1] <= MAX_FEATURE_DIM:
        wanted = f">={feature_dim}" if columns else str(feature_dim)
        raise DataError(
            path,
            f"features of {name} have shape {shape_text(shape)}, expected [{NUM_VIEWS}, {wanted}]",
        )


def select_width(
    path: Path,
    first: tuple[str, Sequence[int]] | None,
    stored_dim: int | None,
    feature_dim: int | None,
    feature_columns: int | None,
) -> int:
    """How many columns a store returns, checked against its first viewpoint ``first``
    (name, shape): ``feature_columns`` (the first N of at least N), else ``feature_dim``
    (exactly), else the stored width ``stored_dim``."""
    for name, value in (("feature_dim", feature_dim), ("feature_columns", feature_columns)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if feature_columns is not None and feature_dim is not None and feature_columns != feature_dim:
        raise ValueError(f"feature_columns {feature_columns} != feature_dim {feature_dim}")
    width = feature_columns or feature_dim or stored_dim
    if width is None:
        if first is not None:  # not [36, D]: say so
            check_feature_shape(path, first[0], first[1], 1, columns=True)
        raise DataError(path, "contains no features")
    if first is not None:
        check_feature_shape(path, first[0], first[1], width, columns=feature_columns is not None)
    elif not 0 < width <= MAX_FEATURE_DIM:
        raise DataError(path, f"records a feature size of {width}")
    return width


class FeatureStore:
    """Read-only mapping ``(scan, viewpoint) -> float32 [36, feature_dim]`` with an LRU cache.

    Formats implement :meth:`_load`, :meth:`_has`, :meth:`_keys` and :meth:`_close`.
    Arrays returned by :meth:`get` are shared with the cache and read-only: copy one
    before changing it. Use a store as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: Path,
        feature_dim: int,
        cache_size: int,
        *,
        stored_dim: int | None = None,
        columns: bool = False,
        attrs: Attrs | None = None,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        #: The file the features are read from.
        self.path = path
        #: Number of columns :meth:`get` returns (``D``).
        self.feature_dim = feature_dim
        #: Number of columns the file stores (its first viewpoint's); ``>= feature_dim``.
        self.stored_dim = stored_dim if stored_dim is not None else feature_dim
        #: True when the store returns the first ``feature_dim`` columns of wider features
        #: (an explicit ``feature_columns``); otherwise every viewpoint must be exactly that wide.
        self.columns = columns
        #: What the file records about how its features were made (HDF5 root attributes:
        #: model, weights, encoder kind, ...); empty for files without metadata.
        self.attrs: Attrs = dict(attrs or {})
        #: Most viewpoints kept in memory (0: no cache).
        self.cache_size = cache_size
        #: Number of :meth:`get` calls answered from the cache, and read from the file.
        self.cache_hits = 0
        self.cache_misses = 0
        self._cache: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._closed = False

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        """Features of one viewpoint: float32 ``[36, feature_dim]``.

        Raises :class:`DataError` when the file has no features for the viewpoint, they
        have the wrong shape or type, contain NaN or infinity, or cannot be read.
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
        if not np.isfinite(features).all():
            name = feature_key(scan, viewpoint)
            raise DataError(self.path, f"features of {name} contain NaN or infinity")
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
        """The stored ``[36, feature_dim]`` array (shape checked with
        ``check_feature_shape(..., columns=self.columns)``), or None when absent."""
        raise NotImplementedError

    def _has(self, scan: str, viewpoint: str) -> bool:
        raise NotImplementedError

    def _keys(self) -> Sequence[Key]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
