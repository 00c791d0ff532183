"""HDF5 feature files in the layout of the public HAMT / DUET / ScaleVLN releases.

One dataset per viewpoint, named ``f"{scan}_{viewpoint}"``, of shape ``[36, D]`` (some
releases store extra columns after the visual feature: ``feature_columns=D`` reads
``[:, :D]`` of those). Root attributes record how the features were made.

:class:`HDF5FeatureWriter` never leaves a half-written file at its output path: it
writes into ``path + ".partial"``, flushes as it goes and renames the partial file
onto ``path`` only when closed successfully. Every dataset carries a Fletcher-32
checksum, so after a crash ``resume=True`` can tell which viewpoints survived intact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features.lock import WriterLock
from envs.features.store import (
    DEFAULT_CACHE_SIZE,
    Attrs,
    FeatureStore,
    Key,
    check_feature_shape,
    feature_key,
    select_width,
    shape_text,
    split_feature_key,
)

#: What a writer appends to its output path while the file is incomplete.
PARTIAL_SUFFIX = ".partial"
#: What a writer appends to the partial path while rebuilding a damaged partial file.
REBUILD_SUFFIX = ".rebuild"
#: Dtypes a writer can store (reads always return float32).
WRITER_DTYPES = ("float16", "float32")
#: Root attribute in which a writer records the feature size ``D``.
FEATURE_DIM_ATTR = "feature_dim"
#: Types a writer's root attributes may have (see :class:`HDF5FeatureWriter`).
AttrValue = str | int | float
#: Largest finite float16 value.
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: How h5py reports a damaged file (it maps HDF5's errors onto these built-in types).
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, NotImplementedError)


def open_hdf5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning every failure into a :class:`DataError` naming it."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a directory, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise DataError(path, "not an HDF5 file")
    try:
        return h5py.File(path, mode)
    except READ_ERRORS as err:
        raise DataError(path, f"cannot open HDF5 file ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    """The first line of an h5py error (they can span lines), for a one-line message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn the ways h5py fails on a damaged file into one :class:`DataError` naming it."""
    try:
        yield
    except DataError:
        raise
    except READ_ERRORS as err:
        raise DataError(path, f"{what} cannot be read ({_reason(err)})") from None


def read_root_attrs(file: h5py.File) -> Attrs:
    """The root attributes of a feature file whose values are strings or numbers (others,
    and ones that cannot be read, are left out)."""
    attrs: Attrs = {}
    for key in list(file.attrs):
        try:
            value = file.attrs[key]
        except READ_ERRORS:
            continue
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            attrs[str(key)] = value
    return attrs


class HDF5FeatureStore(FeatureStore):
    """Features in an HDF5 file with one ``[36, D]`` float dataset per viewpoint.

    ``feature_dim`` defaults to the size a writer recorded, else to the width of the first
    dataset; every dataset must be exactly that wide. ``feature_columns`` reads the first
    N columns of datasets at least N wide instead (public releases with extra columns).
    Opening reads metadata only.
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
        self._file = open_hdf5(path)
        self._key_list: list[Key] | None = None
        try:
            with _reading(path, "the file's index"):
                first = self._first_dataset(path)
                attrs = read_root_attrs(self._file)
            shape = first[1] if first is not None else ()
            stored_dim = int(shape[1]) if len(shape) == 2 else _recorded_dim(attrs)
            if first is not None and feature_dim is None and feature_columns is None:
                feature_dim = _recorded_dim(attrs)  # must agree with the first dataset
            width = select_width(path, first, stored_dim, feature_dim, feature_columns)
            super().__init__(
                path,
                width,
                cache_size,
                stored_dim=stored_dim or width,
                columns=feature_columns is not None,
                attrs=attrs,
            )
        except BaseException:
            self._file.close()
            raise

    def _first_dataset(self, path: Path) -> tuple[str, tuple[int, ...]] | None:
        """Name and shape of the first member, which must be a float dataset."""
        name = next(iter(self._file), None)
        if name is None:
            return None
        member = self._file[name]
        if not isinstance(member, h5py.Dataset):
            raise DataError(path, f"{name} is a group, expected one dataset per viewpoint")
        _check_dtype(path, name, member)
        return name, member.shape

    def _load(self, scan: str, viewpoint: str) -> np.ndarray | None:
        name = feature_key(scan, viewpoint)
        with _reading(self.path, f"features of {name}"):
            dataset = self._file.get(name)
            if not isinstance(dataset, h5py.Dataset):
                return None
            _check_dtype(self.path, name, dataset)
            check_feature_shape(self.path, name, dataset.shape, self.feature_dim, self.columns)
            return dataset[:, : self.feature_dim]  # [36, D]

    def _has(self, scan: str, viewpoint: str) -> bool:
        with _reading(self.path, "the file's index"):
            return feature_key(scan, viewpoint) in self._file

    def _keys(self) -> Sequence[Key]:
        if self._key_list is None:
            with _reading(self.path, "the file's index"):
                self._key_list = [split_feature_key(name) for name in self._file]
        return self._key_list

    def _close(self) -> None:
        self._file.close()


def _recorded_dim(attrs: Attrs) -> int | None:
    """The feature size a writer recorded (None when absent or not a positive whole number:
    then the datasets' own width decides)."""
    value = attrs.get(FEATURE_DIM_ATTR)
    if isinstance(value, int | float) and float(value).is_integer() and value > 0:
        return int(value)
    return None


def _check_dtype(path: Path, name: str, dataset: h5py.Dataset) -> None:
    """Refuse datasets of anything but floating-point numbers (strings, integers, ...)."""
    if dataset.dtype.kind != "f":
        raise DataError(path, f"features of {name} are {dataset.dtype}, expected floats")


def _check_shapes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """A writer's ``shapes`` as plain tuples of positive sizes (ValueError otherwise)."""
    checked = {str(suffix): tuple(int(n) for n in shape) for suffix, shape in shapes.items()}
    if not checked or any(not shape or min(shape) <= 0 for shape in checked.values()):
        raise ValueError(f"shapes must map name suffixes to non-empty positive shapes: {shapes}")
    return checked


def _fsync(path: Path) -> None:
    """Force a file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_attrs(path: Path, file: h5py.File, attrs: Mapping[str, AttrValue]) -> None:
    """Refuse to resume a partial file whose recorded attributes differ from ``attrs``."""
    for key, value in attrs.items():
        stored = file.attrs.get(key)
        if isinstance(stored, np.generic):
            stored = stored.item()
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8", "replace")
        if stored != value:
            shown = "nothing" if stored is None else repr(stored)
            raise DataError(
                path,
                f"was written with {key} {shown}, not {value!r}: "
                "resume with the same settings or delete it",
            )


def _readable_datasets(
    path: Path,
    feature_dim: int,
    attrs: Mapping[str, AttrValue] | None = None,
    shape_of: Callable[[str], tuple[int, ...]] | None = None,
) -> tuple[list[str], bool]:
    """Names of the intact datasets of a partial file (of shape ``shape_of(name)``, default
    ``[36, feature_dim]``), and whether the whole file is intact (opens, every member reads
    and passes its checksum).
    Raises :class:`DataError` when the file records another feature size or ``attrs``."""
    try:
        file = h5py.File(path, "r")
    except Exception:  # a file killed mid-write can fail in many ways: treat all as unreadable
        return [], False
    readable: list[str] = []
    intact = True
    with file:
        stored_dim = file.attrs.get(FEATURE_DIM_ATTR)
        if stored_dim is not None and int(stored_dim) != feature_dim:
            raise DataError(
                path,
                f"was written with feature_dim {int(stored_dim)}, not {feature_dim}: "
                "resume with the same size or delete it",
            )
        _check_attrs(path, file, attrs or {})
        try:
            names = list(file)
        except Exception:
            return [], False
        for name in names:
            try:
                dataset = file[name]
                dataset[()]  # reading verifies the Fletcher-32 checksum
                wanted = (NUM_VIEWS, feature_dim) if shape_of is None else shape_of(name)
                good = dataset.shape == wanted
            except Exception:
                good = False
            intact = intact and good
            if good:
                readable.append(name)
    return readable, intact


class HDF5FeatureWriter:
    """Write an HDF5 feature file one viewpoint at a time, atomically and resumably.

    Data goes to ``path + ".partial"`` (flushed every ``flush_every`` adds) and is
    renamed onto ``path`` by a successful :meth:`close`. Leaving a ``with`` block by an
    exception, or a failing close, keeps the partial file and leaves ``path`` untouched.
    With ``resume=True`` an existing partial file is reopened and :meth:`done` lists
    what it holds; a damaged one is rebuilt from its intact viewpoints.

    ``attrs`` are recorded as root attributes of the file (how the features were made:
    model, weights, image size, ...); resuming a partial file that records other values
    raises :class:`DataError`, so one file never mixes features of two settings.

    One writer per path: a writer holds ``path + ".lock"`` (:class:`WriterLock`) from its
    creation until it is closed, abandoned or discarded; a second writer of the same path,
    in any process, raises :class:`DataError` instead of writing into the same partial file.

    ``shapes`` generalises the layout beyond panoramas: the shape of each dataset by the end
    of its name (the longest matching suffix wins; ``""`` matches every name), e.g.
    ``{"": (512,), ".grid": (49, 768)}`` for per-image features, written with
    :meth:`add_dataset`. The default, ``{"": (36, feature_dim)}``, is the panorama layout.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        feature_dim: int,
        dtype: str = "float16",
        resume: bool = False,
        flush_every: int = 1,
        attrs: Mapping[str, AttrValue] | None = None,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        if dtype not in WRITER_DTYPES:
            raise ValueError(f"dtype must be one of {WRITER_DTYPES}, got {dtype!r}")
        if feature_dim <= 0 or flush_every <= 0:
            raise ValueError("feature_dim and flush_every must be positive")
        self.path = Path(path)
        self.partial_path = Path(f"{self.path}{PARTIAL_SUFFIX}")
        self.feature_dim = feature_dim
        self.dtype = np.dtype(dtype)
        self.flush_every = flush_every
        self.shapes = _check_shapes(shapes or {"": (NUM_VIEWS, feature_dim)})
        self.attrs = dict(attrs or {})
        if FEATURE_DIM_ATTR in self.attrs:
            raise ValueError(f"attrs may not set {FEATURE_DIM_ATTR!r} (the writer records it)")
        if any(not isinstance(v, AttrValue) or isinstance(v, bool) for v in self.attrs.values()):
            raise ValueError(f"attrs values must be str, int or float, got {self.attrs}")
        if self.path.is_dir():
            raise DataError(self.path, "is a directory, expected an HDF5 file")
        self._lock = WriterLock(self.path)
        self._done: set[str] = set()
        self._unflushed = 0
        try:
            if resume and self.partial_path.exists():
                self._file: h5py.File | None = self._reopen()
            else:
                self._file = self._create(self.partial_path)
        except BaseException:
            self._lock.release()
            raise

    def _create(self, path: Path) -> h5py.File:
        try:
            file = h5py.File(path, "w")
        except OSError as err:
            raise DataError(path, f"cannot create HDF5 file ({err})") from None
        file.attrs[FEATURE_DIM_ATTR] = self.feature_dim
        for key, value in self.attrs.items():
            file.attrs[key] = value
        file.flush()
        return file

    def _reopen(self) -> h5py.File:
        """Reopen the partial file for appending, rebuilding it first if it is damaged."""
        readable, intact = _readable_datasets(
            self.partial_path, self.feature_dim, self.attrs, self.shape_of
        )
        if not intact:
            rebuilt_path = Path(f"{self.partial_path}{REBUILD_SUFFIX}")
            with self._create(rebuilt_path) as rebuilt:
                if readable:
                    with h5py.File(self.partial_path, "r") as damaged:
                        for name in readable:
                            self._write(rebuilt, name, damaged[name][()])
            os.replace(rebuilt_path, self.partial_path)
        self._done = set(readable)
        return h5py.File(self.partial_path, "a")

    def _write(self, file: h5py.File, name: str, features: np.ndarray) -> None:
        if name in file:
            del file[name]
        file.create_dataset(
            name,
            data=features.astype(self.dtype, copy=False),  # [36, D] (or shape_of(name))
            chunks=self.shape_of(name),
            fletcher32=True,
        )

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of dataset ``name``: ``shapes``' longest suffix that ends it."""
        suffix = max((s for s in self.shapes if name.endswith(s)), key=len, default=None)
        if suffix is None:
            raise ValueError(f"{self.path}: no shape given for a dataset named {name!r}")
        return self.shapes[suffix]

    def add(self, scan: str, viewpoint: str, features: np.ndarray) -> None:
        """Store the ``[36, feature_dim]`` features of a viewpoint (replacing earlier ones)."""
        name = feature_key(scan, viewpoint)
        check_feature_shape(self.path, name, np.shape(features), self.feature_dim)
        self.add_dataset(name, features)

    def add_dataset(self, name: str, features: np.ndarray) -> None:
        """Store dataset ``name`` of shape ``shape_of(name)`` (replacing an earlier one)."""
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        array = np.asarray(features)
        wanted = self.shape_of(name)
        if array.shape != wanted:
            raise DataError(
                self.path,
                f"features of {name} have shape {shape_text(array.shape)}, "
                f"expected {shape_text(wanted)}",
            )
        if not np.isfinite(array).all():
            raise DataError(self.path, f"features of {name} contain NaN or infinity")
        if self.dtype == np.float16 and np.abs(array).max() > FLOAT16_MAX:
            raise DataError(self.path, f"features of {name} exceed the float16 range")
        self._write(self._file, name, array)
        self._done.add(name)
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self._file.flush()
            self._unflushed = 0

    def done(self) -> set[str]:
        """Names (``"{scan}_{viewpoint}"``) of the viewpoints (datasets) written so far."""
        return set(self._done)

    def __len__(self) -> int:
        return len(self._done)

    @property
    def closed(self) -> bool:
        return self._file is None

    def close(self) -> None:
        """Finish the file: flush it, then rename the partial file onto ``path``."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            try:
                file.flush()
            finally:
                file.close()
            _fsync(self.partial_path)
            os.replace(self.partial_path, self.path)
        except OSError as err:
            raise DataError(self.path, f"cannot finish writing ({err})") from err
        finally:
            self._lock.release()

    def abandon(self) -> None:
        """Close without finishing: the partial file stays for ``resume=True``."""
        try:
            self._close_file()
        finally:
            self._lock.release()

    def discard(self) -> None:
        """Close without finishing and delete the partial file."""
        try:
            self._close_file()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial_path)
        finally:
            self._lock.release()

    def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(Exception):
                file.flush()
            file.close()

    def __enter__(self) -> HDF5FeatureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()
