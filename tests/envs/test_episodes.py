"""R2R episodes from the real files, and bad input."""

from __future__ import annotations

import json

import pytest

from envs.episodes import load_episodes
from envs.errors import DataError

# Verified counts of the real files (../shared/r2r_real/SOURCES.md).
COUNTS = {"train": 14039, "val_seen": 1021, "val_unseen": 2349, "test": 4173}


@pytest.mark.parametrize("split", list(COUNTS))
def test_real_splits(real_data_dir, split):
    episodes = load_episodes(real_data_dir, split)
    assert len(episodes) == COUNTS[split]
    ids = [e.instr_id for e in episodes]
    assert len(set(ids)) == len(ids)
    for e in episodes:
        path_id, k = e.instr_id.rsplit("_", 1)
        assert path_id == str(e.path_id) and 0 <= int(k) <= 3
    if split == "test":
        assert all(len(e.path) == 1 and e.distance is None for e in episodes)
    else:
        assert all(4 <= len(e.path) <= 7 and e.distance > 0 for e in episodes)


def test_some_paths_have_four_instructions(real_data_dir):
    episodes = load_episodes(real_data_dir, "train")
    assert sum(e.instr_id.endswith("_3") for e in episodes) == 14


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "malformed JSON"),
        ('{"a": 1}', "expected a JSON list of paths"),
        (
            '[{"scan": "s", "path_id": 1, "path": ["a"], "heading": 0}]',
            "missing key 'instructions'",
        ),
        (
            '[{"scan": "s", "path_id": 1, "path": [], "heading": 0, "instructions": []}]',
            "path must be a non-empty list",
        ),
        (
            '[{"scan": "s", "path_id": 1, "path": ["a"], "heading": "x", "instructions": []}]',
            "heading and distance must be finite numbers",
        ),
        (
            '[{"scan": "s", "path_id": 1, "path": ["a"], "heading": 1e999, "instructions": []}]',
            "heading and distance must be finite numbers",
        ),
        (
            '[{"scan": "s", "path_id": 1, "path": ["a"], "heading": 1'
            + "0" * 400
            + ', "instructions": []}]',
            "heading and distance must be finite numbers",
        ),
        (
            '[{"scan": "s", "path_id": "1", "path": ["a"], "heading": 0, "instructions": []}]',
            "path_id must be an integer",
        ),
        (
            '[{"scan": 7, "path_id": 1, "path": ["a"], "heading": 0, "instructions": []}]',
            "scan must be a string",
        ),
        ("[1] [2]", "line 1, column 5: malformed JSON: Extra data"),
    ],
)
def test_bad_r2r_files(tmp_path, content, message):
    (tmp_path / "R2R_val_seen.json").write_text(content)
    with pytest.raises(DataError) as err:
        load_episodes(tmp_path, "val_seen")
    assert str(tmp_path / "R2R_val_seen.json") in str(err.value) and message in str(err.value)


def test_missing_split_file(tmp_path):
    with pytest.raises(DataError, match="R2R_val_seen.json: file not found"):
        load_episodes(tmp_path, "val_seen")


def test_explicit_json_path(tmp_path, real_data_dir):
    data = json.loads((real_data_dir / "R2R_val_seen.json").read_text())[:3]
    path = tmp_path / "aug.json"
    path.write_text(json.dumps(data))
    assert len(load_episodes(real_data_dir, str(path))) == sum(len(d["instructions"]) for d in data)
