"""Fuzzing the JSON loaders of envs: whatever a file holds, only a one-line DataError comes out.

Each loader reads a valid file made from the real R2R data, corrupted at random two ways:
its bytes (flipped, cut, inserted, deleted) and its decoded JSON (a value anywhere in the
tree replaced by another JSON value, huge integers and NaN included, removed, or
repeated). The loader must either return or raise :class:`DataError` naming the file,
one line, within :data:`HANG_SECONDS`. ``CLIPVIL_FUZZ_EXAMPLES`` raises the number of
examples (and draws fresh ones) for a deeper run than the suite's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzzing import corrupted_bytes, fuzz_settings, no_hang, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st

from envs.episodes import load_episodes
from envs.evaluate import load_predictions, reference_predictions, save_predictions
from envs.graph import CONNECTIVITY_DIR, connectivity_path, load_scan_graph
from envs.tokenizer import Tokenizer
from vln_agent.cli import EXIT_BAD_INPUT, main

#: A small real scan (its connectivity file is 40 kB) and how many of its R2R paths to use.
SCAN = "17DRP5sb8fy"
SAMPLE_PATHS = 2
#: Examples per property in the suite (``$CLIPVIL_FUZZ_EXAMPLES`` for a deep run).
EXAMPLES = 25
#: A loader that takes longer than this on a tiny file hangs.
HANG_SECONDS = 20

FUZZ = fuzz_settings(EXAMPLES)

# ------------------------------------------------------------------ corruption strategies
#: Values that break naive numeric code: beyond float range, NaN, infinities, -0.
NASTY_NUMBERS = st.sampled_from(
    [10**400, -(10**400), float("nan"), float("inf"), -float("inf"), -0.0, 2**63, True]
)
JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats() | NASTY_NUMBERS | st.text(max_size=6)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _random_location(draw: st.DrawFn, document: Any) -> list[Any]:
    """Keys from the root down to a node, mostly a leaf (``[]`` is the root)."""
    keys: list[Any] = []
    node = document
    while isinstance(node, (list, dict)) and node and draw(st.integers(0, 3)):  # 3 in 4 go on
        key = draw(st.sampled_from(range(len(node)) if isinstance(node, list) else list(node)))
        keys.append(key)
        node = node[key]
    return keys


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> Any:
    """A deep copy of ``document`` with one to three nodes replaced, removed or repeated."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        keys = _random_location(draw, document)
        if not keys:
            document = draw(JSON_VALUES)
            continue
        parent = document
        for key in keys[:-1]:
            parent = parent[key]
        key = keys[-1]
        edit = draw(st.sampled_from(["replace", "remove", "repeat"]))
        if edit == "replace":
            parent[key] = draw(NASTY_NUMBERS | JSON_VALUES)
        elif edit == "remove":
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return document


def corrupted_file(document: Any) -> st.SearchStrategy[bytes]:
    """The bytes of ``document`` as JSON, corrupted as bytes or as decoded JSON."""
    text = json.dumps(document).encode()
    as_json = mutated_json(document).map(lambda doc: json.dumps(doc).encode())
    return corrupted_bytes(text) | as_json


# ------------------------------------------------------------------------------ checking
def loads_or_data_error(load: Callable[[], object], path: Path) -> None:
    """``load()`` returns, or raises a one-line DataError naming ``path``; nothing else."""
    returns_or_data_error(load, path, HANG_SECONDS)


# ------------------------------------------------------------------------------ documents
@pytest.fixture(scope="module")
def sample(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Small valid documents of every kind, from the real data, and a folder to corrupt in."""
    r2r = json.loads((real_data_dir / "R2R_val_seen.json").read_text())
    r2r = [e for e in r2r if e["scan"] == SCAN][:SAMPLE_PATHS]
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "split.json").write_text(json.dumps(r2r))
    save_predictions(
        folder / "predictions.json",
        reference_predictions(load_episodes(folder, str(folder / "split.json"))),
    )
    Tokenizer.from_texts(i for e in r2r for i in e["instructions"]).save(folder / "vocab.json")
    return {
        "folder": folder,
        "r2r": r2r,
        "connectivity": json.loads(connectivity_path(real_data_dir, SCAN).read_text()),
        "predictions": json.loads((folder / "predictions.json").read_text()),
        "vocab": json.loads((folder / "vocab.json").read_text()),
    }


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_the_samples_load(sample):
    folder = sample["folder"]
    graph_file = write(folder, "g.json", json.dumps(sample["connectivity"]).encode())
    assert len(load_episodes(folder, str(folder / "split.json"))) >= SAMPLE_PATHS * 3
    assert len(load_scan_graph(graph_file, SCAN).distances) == len(sample["connectivity"])
    assert len(load_predictions(folder / "predictions.json")) >= SAMPLE_PATHS * 3
    assert len(Tokenizer.load(folder / "vocab.json")) > 10


# --------------------------------------------------------------------------- properties
@FUZZ
@given(data=st.data())
def test_r2r_files(sample, data):
    path = write(sample["folder"], "r2r.json", data.draw(corrupted_file(sample["r2r"])))
    loads_or_data_error(lambda: load_episodes(path.parent, str(path)), path)


@FUZZ
@given(data=st.data())
def test_connectivity_files(sample, data):
    content = data.draw(corrupted_file(sample["connectivity"]))
    path = write(sample["folder"], f"{SCAN}_connectivity.json", content)
    loads_or_data_error(lambda: load_scan_graph(path).distances, path)


@FUZZ
@given(data=st.data())
def test_prediction_files(sample, data):
    path = write(sample["folder"], "p.json", data.draw(corrupted_file(sample["predictions"])))
    loads_or_data_error(lambda: load_predictions(path), path)


@FUZZ
@given(data=st.data())
def test_vocabulary_files(sample, data):
    path = write(sample["folder"], "v.json", data.draw(corrupted_file(sample["vocab"])))
    loads_or_data_error(lambda: Tokenizer.load(path), path)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["predictions", "r2r", "connectivity"]))
def test_eval_r2r_exits_0_or_one_line_and_2(sample, data, which, capsys):
    """``clipvil eval-r2r`` with one of its three inputs corrupted: scores, or one line."""
    run = sample["folder"] / "cli"
    files = {
        "predictions": run / "predictions.json",
        "r2r": run / "split.json",
        "connectivity": run / CONNECTIVITY_DIR / f"{SCAN}_connectivity.json",
    }
    for name, path in files.items():
        valid = json.dumps(sample[name]).encode()
        content = data.draw(corrupted_file(sample[name])) if name == which else valid
        write(run, str(path.relative_to(run)), content)
    out = run / "scores.json"
    out.unlink(missing_ok=True)
    capsys.readouterr()
    argv = ["eval-r2r", "--data", str(run), "--split", str(files["r2r"])]
    with no_hang(HANG_SECONDS):
        status = main([*argv, "--predictions", str(files["predictions"]), "--out", str(out)])
    err = capsys.readouterr().err
    if status == 0:
        assert out.is_file()
    else:
        assert status == EXIT_BAD_INPUT and not out.exists()
        assert err.startswith("error: ") and err.count("\n") == 1, err
