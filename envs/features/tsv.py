"""The legacy R2R feature TSV of R2R-EnvDrop and CLIP-ViL (``img_features/*.tsv``).

One line per viewpoint, no header, six tab-separated fields::

    scanId  viewpointId  image_w  image_h  vfov  features

where ``features`` is the base64 encoding of the float32 bytes of the ``[36, D]``
array. Rows are large (about 390 kB for ``D = 2048``), so the file is memory-mapped:
opening records the byte range of each line, and :meth:`TSVFeatureStore.get` decodes
only the line it needs.
"""

from __future__ import annotations

import base64
import binascii
import mmap
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features.hdf5 import HDF5FeatureWriter
from envs.features.store import (
    DEFAULT_CACHE_SIZE,
    FeatureStore,
    Key,
    check_feature_shape,
    feature_key,
    select_width,
)

#: The fields of a line, in order.
TSV_FIELDS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")
FEATURES_FIELD = TSV_FIELDS.index("features")
#: Byte order and type of the encoded features.
TSV_FEATURE_DTYPE = np.dtype("<f4")


def encode_tsv_line(
    scan: str, viewpoint: str, features: np.ndarray, image_w: int, image_h: int, vfov: float
) -> str:
    """One line (without its newline) in the legacy format; ``vfov`` in degrees as R2R writes it."""
    payload = base64.b64encode(np.ascontiguousarray(features, dtype=TSV_FEATURE_DTYPE).tobytes())
    fields = (scan, viewpoint, str(image_w), str(image_h), str(vfov), payload.decode("ascii"))
    return "\t".join(fields)


class TSVFeatureStore(FeatureStore):
    """Features in a legacy R2R TSV, read lazily through a memory map.

    ``feature_dim`` defaults to the width of the first line's features; every line must be
    exactly that wide, unless ``feature_columns`` reads the first N columns of lines at
    least N wide. When a viewpoint appears on several lines, the last one wins (as in
    R2R-EnvDrop's reader). The format records no encoder: :attr:`attrs` is empty.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        feature_dim: int | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        *,
        feature_columns: int | None = None,
    ) -> None:
        path = Path(path)
        if not path.exists():
            raise DataError(path, "file not found")
        if path.is_dir():
            raise DataError(path, "is a directory, expected a TSV file")
        self._handle = open(path, "rb")  # closed by close()
        self._map: mmap.mmap | None = None
        try:
            if os.fstat(self._handle.fileno()).st_size > 0:
                self._map = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
            #: (scan, viewpoint) -> (start, end) byte offsets of its line.
            self._index = self._build_index(path)
            if not self._index:
                raise DataError(path, "contains no feature lines")
            scan, viewpoint = next(iter(self._index))
            shape = self._decode(path, scan, viewpoint).shape  # [36, stored D]
            first = (feature_key(scan, viewpoint), shape)
            width = select_width(path, first, shape[1], feature_dim, feature_columns)
            super().__init__(
                path,
                width,
                cache_size,
                stored_dim=shape[1],
                columns=feature_columns is not None,
            )
        except BaseException:
            self._release()
            raise

    def _build_index(self, path: Path) -> dict[Key, tuple[int, int]]:
        """Byte range of every line, keyed by its first two fields (one pass, no decoding)."""
        index: dict[Key, tuple[int, int]] = {}
        data = self._map
        if data is None:
            return index
        size, start, line_number = len(data), 0, 0
        while start < size:
            line_number += 1
            end = data.find(b"\n", start)
            end = size if end < 0 else end
            first_tab = data.find(b"\t", start, end)
            second_tab = data.find(b"\t", first_tab + 1, end) if first_tab >= 0 else -1
            if second_tab < 0:
                if data[start:end].strip():
                    raise DataError(
                        path, f"line {line_number}: expected {len(TSV_FIELDS)} tab-separated fields"
                    )
            else:
                scan = data[start:first_tab].decode("utf-8", errors="replace")
                viewpoint = data[first_tab + 1 : second_tab].decode("utf-8", errors="replace")
                if (scan, viewpoint) != TSV_FIELDS[:2]:  # tolerate a header line
                    index[(scan, viewpoint)] = (start, end)
            start = end + 1
        return index

    def _decode(self, path: Path, scan: str, viewpoint: str) -> np.ndarray:
        """The ``[36, stored D]`` float32 array of one indexed line."""
        assert self._map is not None
        start, end = self._index[(scan, viewpoint)]
        fields = self._map[start:end].rstrip(b"\r").split(b"\t")
        name = feature_key(scan, viewpoint)
        if len(fields) != len(TSV_FIELDS):
            raise DataError(
                path,
                f"features of {name}: expected {len(TSV_FIELDS)} tab-separated fields, "
                f"found {len(fields)}",
            )
        try:
            raw = base64.b64decode(fields[FEATURES_FIELD], validate=True)
        except (binascii.Error, ValueError):
            raise DataError(path, f"features of {name} are not valid base64") from None
        if len(raw) % (NUM_VIEWS * TSV_FEATURE_DTYPE.itemsize):
            count = len(raw) / TSV_FEATURE_DTYPE.itemsize
            raise DataError(path, f"features of {name} hold {count:g} float32 values, not 36 x D")
        return np.frombuffer(raw, dtype=TSV_FEATURE_DTYPE).reshape(NUM_VIEWS, -1)  # [36, D]

    def _load(self, scan: str, viewpoint: str) -> np.ndarray | None:
        if (scan, viewpoint) not in self._index:
            return None
        stored = self._decode(self.path, scan, viewpoint)  # [36, stored D]
        name = feature_key(scan, viewpoint)
        check_feature_shape(self.path, name, stored.shape, self.feature_dim, self.columns)
        return stored[:, : self.feature_dim]  # [36, D]

    def _has(self, scan: str, viewpoint: str) -> bool:
        return (scan, viewpoint) in self._index

    def _keys(self) -> Sequence[Key]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def _release(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._handle.close()

    def _close(self) -> None:
        self._release()


def convert_tsv_to_hdf5(
    tsv_path: str | os.PathLike[str],
    h5_path: str | os.PathLike[str],
    dtype: str = "float32",
    progress: bool = False,
) -> int:
    """Convert a legacy R2R feature TSV into an HDF5 feature file; returns the viewpoint count.

    Values are kept exactly with ``dtype="float32"``. On failure nothing is left at
    ``h5_path``, nor a partial file. ``progress`` shows a tqdm bar on stderr.
    """
    with TSVFeatureStore(tsv_path, cache_size=0) as store:
        keys: Iterable[Key] = list(store.keys())
        if progress:
            from tqdm import tqdm

            keys = tqdm(keys, desc="convert-features", unit="viewpoint")
        writer = HDF5FeatureWriter(h5_path, store.feature_dim, dtype=dtype, flush_every=256)
        try:
            for scan, viewpoint in keys:
                writer.add(scan, viewpoint, store.get(scan, viewpoint))
            writer.close()
        except BaseException:
            writer.discard()
            raise
        return len(store)
