"""Fuzzing the feature loaders: damaged HDF5 and TSV files give :class:`DataError` and
nothing else, from :func:`open_features` and from every store method, and never hang.

Each property runs a bounded number of examples (:data:`EXAMPLES`) under a deadline; a
watchdog (``faulthandler``) ends the test process if one example hangs inside h5py's C
code, where no Python-level timeout can reach.
"""

from __future__ import annotations

import base64
import faulthandler
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features import HDF5FeatureWriter, encode_tsv_line, open_features

#: Examples per property (4 properties).
EXAMPLES = 25
#: One example may take this long on a busy shared CPU (they take ~10-50 ms).
DEADLINE = timedelta(seconds=10)
#: A test that runs this long is hung: the watchdog dumps the stacks and exits.
WATCHDOG_SECONDS = 300
DIM = 8
SCAN = "17DRP5sb8fy"
VIEWPOINTS = [f"{i:032x}" for i in range(3)]

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ------------------------------------------------------------------------ reading
#: How a file is opened: all columns, an exact width, or the first N columns.
open_modes = st.one_of(
    st.just({}),
    st.integers(1, 2 * DIM).map(lambda n: {"feature_dim": n}),
    st.integers(1, 2 * DIM).map(lambda n: {"feature_columns": n}),
)


def read_everything(path: Path, options: dict[str, int]) -> None:
    """Open ``path`` and call every store method on every key (and a missing one);
    DataError is the only way any of them may fail."""
    try:
        store = open_features(path, cache_size=1, **options)
    except DataError:
        return
    with store:
        _ = (store.feature_dim, store.stored_dim, dict(store.attrs), repr(store))
        try:
            keys = list(store.keys())
            len(store)
        except DataError:
            keys = []
        for key in [*keys, (SCAN, "missing"), (SCAN, VIEWPOINTS[0])]:
            _data_errors_only(lambda key=key: key in store)
            _data_errors_only(lambda key=key: store.get(*key))


def _data_errors_only(call: Callable[[], object]) -> None:
    try:
        call()
    except DataError as err:
        assert "\n" not in str(err)


# ---------------------------------------------------------------- byte corruption
#: (position as a fraction of the file, xor mask) pairs.
flips = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=12)
damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), flips),
    st.tuples(st.just("zero"), st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 4096))),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=256)),
)


def corrupt(data: bytes, how: tuple) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[: int(arg * len(data))]
    buffer = bytearray(data)
    if kind == "flip":
        for where, mask in arg:
            buffer[int(where * len(buffer))] ^= mask
    elif kind == "zero":
        start = int(arg[0] * len(buffer))
        buffer[start : start + arg[1]] = bytes(len(buffer[start : start + arg[1]]))
    else:
        buffer += arg
    return bytes(buffer)


def write_valid_hdf5(path: Path, writer_made: bool) -> None:
    """Three viewpoints, by the writer (attributes, Fletcher-32) or plainly (a public file)."""
    rng = np.random.default_rng(0)
    if writer_made:
        attrs = {"model_name": "clipvil-tiny", "pretrained_sha256": "ab" * 32, "image_size": 32}
        with HDF5FeatureWriter(path, DIM, dtype="float16", attrs=attrs) as writer:
            for viewpoint in VIEWPOINTS:
                writer.add(SCAN, viewpoint, rng.standard_normal((NUM_VIEWS, DIM)))
        return
    with h5py.File(path, "w") as f:
        for viewpoint in VIEWPOINTS:
            f[f"{SCAN}_{viewpoint}"] = rng.standard_normal((NUM_VIEWS, DIM)).astype(np.float32)


def write_valid_tsv(path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = [
        encode_tsv_line(SCAN, v, rng.standard_normal((NUM_VIEWS, DIM)), 640, 480, 60)
        for v in VIEWPOINTS
    ]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")


@FUZZ
@given(writer_made=st.booleans(), how=damage, options=open_modes)
def test_damaged_hdf5_bytes_give_data_errors_only(writer_made, how, options) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feats.h5"
        write_valid_hdf5(path, writer_made)
        path.write_bytes(corrupt(path.read_bytes(), how))
        read_everything(path, options)


@FUZZ
@given(how=damage, options=open_modes)
def test_damaged_tsv_bytes_give_data_errors_only(how, options) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feats.tsv"
        write_valid_tsv(path)
        path.write_bytes(corrupt(path.read_bytes(), how))
        read_everything(path, options)


# ------------------------------------------------------------ wrong structure
DTYPES = ["float16", "float32", "float64", "int32", "uint8", "bool", "complex64", "S4"]
SHAPES = [
    (NUM_VIEWS, DIM),
    (NUM_VIEWS, DIM + 3),
    (NUM_VIEWS, 2),
    (NUM_VIEWS - 1, DIM),
    (NUM_VIEWS,),
    (),
    (NUM_VIEWS, 0),
    (NUM_VIEWS, DIM, 2),
    (NUM_VIEWS, 1 << 17),  # wider than any feature: a damaged header
]
members = st.one_of(
    st.tuples(
        st.just("dataset"),
        st.sampled_from(DTYPES),
        st.sampled_from(SHAPES),
        st.sampled_from([0.0, np.nan, np.inf, 1e30]),
    ),
    st.tuples(st.just("group"), st.none(), st.none(), st.none()),
    st.tuples(st.just("soft link"), st.none(), st.none(), st.none()),
    st.tuples(st.just("external link"), st.none(), st.none(), st.none()),
)
attr_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8),
    st.just(np.arange(3)),
    st.none(),
)


def write_member(file: h5py.File, name: str, member: tuple) -> None:
    kind, dtype, shape, fill = member
    if kind == "group":
        file.create_group(name)
    elif kind == "soft link":
        file[name] = h5py.SoftLink("/nowhere")
    elif kind == "external link":
        file[name] = h5py.ExternalLink("missing.h5", "/data")
    elif dtype == "S4":
        file.create_dataset(name, shape=shape, dtype="S4", fillvalue=b"ab")
    else:
        fillvalue = np.array(fill).astype(dtype) if np.dtype(dtype).kind != "b" else True
        file.create_dataset(name, shape=shape, dtype=dtype, fillvalue=fillvalue)


@FUZZ
@given(
    found=st.lists(members, min_size=0, max_size=4),
    attrs=st.dictionaries(st.sampled_from(["feature_dim", "model_name", "x"]), attr_values),
    options=open_modes,
)
def test_hdf5_of_wrong_types_shapes_keys_and_attrs_gives_data_errors_only(
    found, attrs, options
) -> None:
    with tempfile.TemporaryDirectory() as tmp, np.errstate(invalid="ignore", over="ignore"):
        path = Path(tmp) / "feats.h5"
        with h5py.File(path, "w") as f:
            for key, value in attrs.items():
                if value is not None:
                    f.attrs[key] = value
            for viewpoint, member in zip(VIEWPOINTS, found, strict=False):
                write_member(f, f"{SCAN}_{viewpoint}", member)
        read_everything(path, options)


# the TSV's fields: right and wrong scan ids, sizes, base64 payloads of any length
payloads = st.one_of(
    st.binary(max_size=NUM_VIEWS * 4 * 3).map(lambda b: base64.b64encode(b).decode()),
    st.integers(0, 3).map(
        lambda n: base64.b64encode(
            np.full((NUM_VIEWS, n), np.nan if n == 2 else 1.0, "<f4").tobytes()
        ).decode()
    ),
    st.text(alphabet="ab=*\t/+", max_size=12),
)
lines = st.one_of(
    st.tuples(st.sampled_from([SCAN, "", "scanId"]), st.sampled_from(VIEWPOINTS), payloads).map(
        lambda t: f"{t[0]}\t{t[1]}\t640\t480\t60\t{t[2]}"
    ),
    st.text(max_size=20),
)


@FUZZ
@given(
    rows=st.lists(lines, max_size=5),
    newline=st.sampled_from(["\n", "\r\n"]),
    options=open_modes,
)
def test_tsv_of_wrong_fields_and_payloads_gives_data_errors_only(rows, newline, options) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feats.tsv"
        path.write_bytes(newline.join(rows).encode("utf-8", "surrogatepass"))
        read_everything(path, options)
