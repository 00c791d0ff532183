"""The official R2R evaluation on the real R2R data: oracles, the CLI, and bad submissions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs.episodes import Episode, load_episodes
from envs.errors import DataError
from envs.evaluate import (
    evaluate,
    evaluate_file,
    format_table,
    load_predictions,
    predictions_to_json,
    reference_predictions,
    save_predictions,
    shortest_path_predictions,
)
from envs.graph import NavGraphs
from envs.metrics import METRIC_NAMES, path_length
from vln_agent.cli import main

SUMMARY_KEYS = {"num_instructions", *METRIC_NAMES}
#: Measured on the real data: R2R_val_unseen.json paths that are longer than the shortest
#: path of the current connectivity graph (3 instructions each).
VAL_UNSEEN_DETOUR_PATHS = {601, 1404, 2847, 3090, 3108, 5476, 6939, 7053}


@pytest.fixture(scope="module")
def graphs(real_data_dir) -> NavGraphs:
    return NavGraphs(real_data_dir)


@pytest.fixture(scope="module")
def val_seen(real_data_dir) -> list[Episode]:
    return load_episodes(real_data_dir, "val_seen")


@pytest.fixture(scope="module")
def val_unseen(real_data_dir) -> list[Episode]:
    return load_episodes(real_data_dir, "val_unseen")


def run_cli(data_dir: Path, split: str, predictions: Path, tmp_path: Path) -> int:
    return main(
        [
            "eval-r2r",
            "--data",
            str(data_dir),
            "--split",
            split,
            "--predictions",
            str(predictions),
            "--out",
            str(tmp_path / "summary.json"),
            "--per-instruction",
            str(tmp_path / "per_instruction.json"),
        ]
    )


def test_reference_oracle_on_val_seen_through_the_cli(real_data_dir, val_seen, tmp_path, capsys):
    submission = tmp_path / "reference.json"
    save_predictions(submission, reference_predictions(val_seen))
    assert run_cli(real_data_dir, "val_seen", submission, tmp_path) == 0
    table = capsys.readouterr().out
    assert "SPL (%)" in table and "100.00" in table and "1021" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["num_instructions"] == len(val_seen) == 1021
    for name in ("sr", "osr", "spl", "ndtw", "sdtw", "cls"):
        assert summary[name] == 1.0, name
    assert summary["ne"] == 0.0
    assert 9.0 < summary["tl"] < 11.0
    rows = json.loads((tmp_path / "per_instruction.json").read_text())
    assert [row["instr_id"] for row in rows] == [e.instr_id for e in val_seen]
    assert set(rows[0]) == {"instr_id", "steps", *METRIC_NAMES}
    assert all(row["steps"] == len(e.path) - 1 for row, e in zip(rows, val_seen, strict=True))
    assert np.mean([row["tl"] for row in rows]) == pytest.approx(summary["tl"])


def test_reference_oracle_on_val_unseen(graphs, val_unseen):
    result = evaluate(graphs, val_unseen, reference_predictions(val_unseen), "reference")
    summary = result.summary
    assert summary["num_instructions"] == 2349
    for name in ("sr", "osr", "ndtw", "sdtw", "cls"):
        assert summary[name] == 1.0, name
    assert summary["ne"] == 0.0
    # SPL divides by the graph's shortest distance: the 24 detour references fall short.
    below = {row["instr_id"] for row in result.per_instruction if row["spl"] < 1.0}
    assert len(below) == 24
    assert {int(instr_id.split("_")[0]) for instr_id in below} == VAL_UNSEEN_DETOUR_PATHS
    row_601 = next(row for row in result.per_instruction if row["instr_id"] == "601_0")
    assert row_601["tl"] == pytest.approx(9.44, abs=0.005)
    assert row_601["spl"] == pytest.approx(8.11 / 9.44, abs=0.001)


def test_shortest_path_oracle_on_val_seen_is_perfect(graphs, val_seen):
    summary = evaluate(graphs, val_seen, shortest_path_predictions(graphs, val_seen), "sp").summary
    for name in ("sr", "osr", "spl", "ndtw", "sdtw", "cls"):
        assert summary[name] == 1.0, name
    assert summary["ne"] == 0.0


def test_shortest_path_oracle_on_val_unseen_through_the_cli(
    real_data_dir, graphs, val_unseen, tmp_path
):
    submission = tmp_path / "shortest.json"
    save_predictions(submission, shortest_path_predictions(graphs, val_unseen))
    assert run_cli(real_data_dir, "val_unseen", submission, tmp_path) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("sr", "osr", "spl"):
        assert summary[name] == 1.0, name
    assert summary["ne"] == 0.0
    assert 0.99 < summary["ndtw"] < 1.0
    assert 0.99 < summary["cls"] < 1.0
    rows = json.loads((tmp_path / "per_instruction.json").read_text())
    off_reference = [row for row in rows if row["ndtw"] < 1.0]
    assert len(off_reference) == 24
    assert {int(r["instr_id"].split("_")[0]) for r in off_reference} == VAL_UNSEEN_DETOUR_PATHS
    assert all(row["cls"] < 1.0 for row in off_reference)


def test_detour_paths_are_the_references_longer_than_the_shortest_path(graphs, val_unseen):
    detours = set()
    for episode in val_unseen:
        graph = graphs[episode.scan]
        reference = [graph.index[v] for v in episode.path]
        if (
            path_length(reference, graph.distances)
            > graph.distance(episode.start, episode.goal) + 1e-6
        ):
            detours.add(episode.path_id)
    assert detours == VAL_UNSEEN_DETOUR_PATHS
    episode = next(e for e in val_unseen if e.path_id == 601)
    assert graphs[episode.scan].distance(episode.start, episode.goal) == pytest.approx(
        8.11, abs=0.005
    )


def test_predictions_round_trip(tmp_path, val_seen):
    predictions = reference_predictions(val_seen[:3])
    predictions[val_seen[0].instr_id][1] = (val_seen[0].path[1], 1.5, -0.5)
    path = tmp_path / "sub.json"
    save_predictions(path, predictions)
    assert load_predictions(path) == predictions
    assert json.loads(path.read_text()) == predictions_to_json(predictions)


def test_format_table():
    summary = {
        "num_instructions": 2349,
        "tl": 9.5046,
        "ne": 0.0,
        "sr": 1.0,
        "osr": 1.0,
        "spl": 0.99844,
        "ndtw": 0.5,
        "sdtw": 0.25,
        "cls": 0.123456,
    }
    assert format_table(summary).splitlines() == [
        "instructions    2349",
        "TL (m)          9.50",
        "NE (m)          0.00",
        "SR (%)        100.00",
        "OSR (%)       100.00",
        "SPL (%)        99.84",
        "nDTW (%)       50.00",
        "SDTW (%)       25.00",
        "CLS (%)        12.35",
    ]


# ----------------------------------------------------------------------------- bad input


def _graph_of(data_dir: Path, episode: Episode):
    return NavGraphs(data_dir)[episode.scan]


def _non_edge_trajectory(data_dir: Path, episode: Episode) -> list:
    graph = _graph_of(data_dir, episode)
    start = graph.index[episode.start]
    far = next(
        j
        for j in np.argsort(graph.distances[start])[::-1]
        if graph.included[j] and not graph.is_edge(episode.start, graph.viewpoint_ids[j])
    )
    return [[episode.start, 0.0, 0.0], [graph.viewpoint_ids[far], 0.0, 0.0]]


def _bad_submission(case: str, episodes: list[Episode], data_dir: Path) -> tuple[object, str]:
    """(decoded submission, the instr_id the message must name or "")."""
    entries = predictions_to_json(reference_predictions(episodes))
    first, last = entries[0], entries[-1]
    if case == "not a list":
        return {"instr_id": first["instr_id"]}, ""
    if case == "entry without trajectory":
        del entries[5]["trajectory"]
        return entries, ""
    if case == "entry without instr_id":
        del entries[5]["instr_id"]
        return entries, ""
    if case == "empty trajectory":
        last["trajectory"] = []
        return entries, last["instr_id"]
    if case == "step not [str, number, number]":
        last["trajectory"][1] = [last["trajectory"][1][0], "north", 0.0]
        return entries, last["instr_id"]
    if case == "step heading beyond float range":
        last["trajectory"][1] = [last["trajectory"][1][0], 10**400, 0.0]
        return entries, last["instr_id"]
    if case == "step elevation not finite":
        last["trajectory"][1] = [last["trajectory"][1][0], 0.0, float("inf")]
        return entries, last["instr_id"]
    if case == "bare viewpoint steps":
        last["trajectory"] = [step[0] for step in last["trajectory"]]
        return entries, last["instr_id"]
    if case == "duplicate instr_id":
        entries.append(dict(last))
        return entries, last["instr_id"]
    if case == "missing instr_id":
        del entries[-1]
        return entries, last["instr_id"]
    if case == "unknown instr_id":
        entries.append({"instr_id": "999999_0", "trajectory": first["trajectory"]})
        return entries, "999999_0"
    if case == "wrong start":
        last["trajectory"] = last["trajectory"][1:]
        return entries, last["instr_id"]
    if case == "unknown viewpoint":
        last["trajectory"].append(["0" * 32, 0.0, 0.0])
        return entries, last["instr_id"]
    if case == "non-edge move":
        last["trajectory"] = _non_edge_trajectory(data_dir, episodes[-1])
        return entries, last["instr_id"]
    raise AssertionError(case)


BAD_CASES = [
    "not a list",
    "entry without trajectory",
    "entry without instr_id",
    "empty trajectory",
    "step not [str, number, number]",
    "step heading beyond float range",
    "step elevation not finite",
    "bare viewpoint steps",
    "duplicate instr_id",
    "missing instr_id",
    "unknown instr_id",
    "wrong start",
    "unknown viewpoint",
    "non-edge move",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_submission_exits_2_naming_file_and_instr_id(
    case, real_data_dir, val_unseen, tmp_path, capsys
):
    entries, instr_id = _bad_submission(case, val_unseen, real_data_dir)
    submission = tmp_path / "bad.json"
    submission.write_text(json.dumps(entries))
    assert run_cli(real_data_dir, "val_unseen", submission, tmp_path) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {submission}: ")
    assert instr_id in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_malformed_json_exits_2_and_writes_nothing(real_data_dir, tmp_path, capsys):
    submission = tmp_path / "bad.json"
    submission.write_text('[{"instr_id": "1_0", "trajectory": [')
    assert run_cli(real_data_dir, "val_unseen", submission, tmp_path) == 2
    err = capsys.readouterr().err
    expected = f"error: {submission}: line 1, column 37: malformed JSON: Expecting value\n"
    assert err == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_test_split_cannot_be_scored(real_data_dir, tmp_path, capsys):
    submission = tmp_path / "bad.json"
    submission.write_text("[]")
    assert run_cli(real_data_dir, "test", submission, tmp_path) == 2
    assert "R2R_test.json: has no reference paths" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_evaluate_names_the_source_it_is_given(graphs, val_unseen):
    predictions = reference_predictions(val_unseen)
    predictions.pop(val_unseen[10].instr_id)
    with pytest.raises(DataError) as err:
        evaluate(graphs, val_unseen, predictions, "my-agent")
    assert err.value.path == "my-agent"
    assert f"no trajectory for instr_id {val_unseen[10].instr_id!r}" in str(err.value)


def test_evaluate_file_returns_the_summary_without_writing(real_data_dir, val_seen, tmp_path):
    submission = tmp_path / "reference.json"
    save_predictions(submission, reference_predictions(val_seen))
    summary = evaluate_file(real_data_dir, "val_seen", submission)
    assert summary["num_instructions"] == 1021 and summary["spl"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["reference.json"]


def test_staying_put_is_allowed_and_scored(graphs, val_seen):
    predictions = reference_predictions(val_seen)
    episode = val_seen[0]
    predictions[episode.instr_id] = [(episode.start, 0.0, 0.0)] * 3  # never moves
    rows = evaluate(graphs, val_seen, predictions, "stay").per_instruction
    row = rows[0]
    goal_distance = graphs[episode.scan].distance(episode.start, episode.goal)
    assert row["tl"] == 0.0 and row["steps"] == 0
    assert row["ne"] == pytest.approx(goal_distance)
    assert goal_distance > 3.0  # 7.27 m: path 5593 starts far from its goal
    assert row["sr"] == row["osr"] == row["spl"] == row["sdtw"] == 0.0
    assert 0.0 < row["ndtw"] < 1.0 and 0.0 < row["cls"] < 1.0
