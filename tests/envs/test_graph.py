"""Connectivity graphs: the real Matterport files and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.graph import NavGraphs, load_scan_graph, position_from_pose

SCAN = "2t7WUuJeko7"  # a small real scan (val_seen)


def test_all_real_scans_load_and_are_symmetric(real_data_dir):
    graphs = NavGraphs(real_data_dir)
    assert len(graphs) == 90
    for scan in graphs:
        graph = graphs[scan]
        adj = graph.adjacency
        assert (adj == adj.T).all(), scan
        assert not adj.diagonal().any()
        assert not adj[~graph.included].any() and not adj[:, ~graph.included].any()


def test_positions_are_pose_translation(real_data_dir):
    path = real_data_dir / "connectivity" / f"{SCAN}_connectivity.json"
    raw = json.loads(path.read_text())
    graph = load_scan_graph(path)
    for ix in (0, len(raw) - 1):
        pose = raw[ix]["pose"]
        assert graph.positions[ix].tolist() == [pose[3], pose[7], pose[11]]
        np.testing.assert_array_equal(position_from_pose(graph.poses[ix]), graph.positions[ix])


def test_distances_match_networkx(real_data_dir):
    import networkx as nx

    graph = NavGraphs(real_data_dir)[SCAN]
    nxg = graph.to_networkx()
    lengths = dict(nx.all_pairs_dijkstra_path_length(nxg))
    for a in list(lengths)[:10]:
        for b, d in lengths[a].items():
            assert graph.distance(a, b) == pytest.approx(d, abs=1e-9)
        path = graph.shortest_path(a, b)
        assert path[0] == a and path[-1] == b
        assert all(graph.is_edge(u, v) for u, v in zip(path, path[1:], strict=False))


@pytest.mark.parametrize("split", ["train", "val_seen", "val_unseen"])
def test_episode_distance_is_reference_path_length(real_data_dir, split):
    """`distance` is the length of the reference path on the graph, within 0.01 m."""
    graphs = NavGraphs(real_data_dir)
    not_shortest: set[int] = set()
    for episode in load_episodes(real_data_dir, split):
        graph = graphs[episode.scan]
        steps = zip(episode.path, episode.path[1:], strict=False)
        length = sum(graph.distance(a, b) for a, b in steps)
        assert length == pytest.approx(episode.distance, abs=0.01)
        shortest = graph.distance(episode.start, episode.goal)
        assert shortest <= episode.distance + 0.01
        if shortest < episode.distance - 0.01:
            not_shortest.add(episode.path_id)
    # Measured on the real files: 8 val_unseen reference paths are not shortest paths
    # of the current connectivity graphs (e.g. path 601: 9.44 m vs 8.11 m).
    assert len(not_shortest) == {"train": 0, "val_seen": 0, "val_unseen": 8}[split]


def test_unknown_scan_and_viewpoint(real_data_dir):
    graphs = NavGraphs(real_data_dir)
    with pytest.raises(DataError, match="no connectivity file for scan 'nope'"):
        graphs["nope"]
    with pytest.raises(DataError, match=f"{SCAN}_connectivity.json: unknown viewpoint 'abc'"):
        graphs[SCAN].require("abc")


def _edit_first(text: str, key: str, value: object) -> str:
    """The connectivity file ``text`` with ``key`` of its first viewpoint set to ``value``."""
    entries = json.loads(text)
    entries[0][key] = value
    return json.dumps(entries)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text: text[:-20], "malformed JSON"),
        (lambda text: json.dumps({"a": 1}), "expected a non-empty JSON list"),
        (lambda text: json.dumps([{"image_id": "x"}]), "entry 0 is missing key 'pose'"),
        (
            lambda text: json.dumps(
                [{"image_id": "x", "pose": [0] * 15, "included": True, "unobstructed": [False]}]
            ),
            "pose must be a list of 16 finite numbers",
        ),
        (lambda text: _edit_first(text, "pose", [10**400] * 16), "16 finite numbers"),
        (lambda text: _edit_first(text, "pose", [float("nan")] * 16), "16 finite numbers"),
        (lambda text: _edit_first(text, "height", float("inf")), "height must be a finite"),
        (lambda text: _edit_first(text, "included", 1), "included must be a boolean"),
        (lambda text: _edit_first(text, "image_id", 7), "image_id must be a string"),
    ],
)
def test_bad_connectivity_files(tmp_path, real_data_dir, mutate, message):
    source = real_data_dir / "connectivity" / f"{SCAN}_connectivity.json"
    target = tmp_path / "connectivity" / f"{SCAN}_connectivity.json"
    target.parent.mkdir()
    target.write_text(mutate(source.read_text()))
    with pytest.raises(DataError) as err:
        NavGraphs(tmp_path)[SCAN]
    assert str(target) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_connectivity_directory(tmp_path):
    with pytest.raises(DataError, match="connectivity directory not found"):
        NavGraphs(tmp_path)


def test_scans_listing_without_scans_txt(tmp_path, real_data_dir):
    (tmp_path / "connectivity").mkdir()
    for scan in (SCAN, "8194nk5LbLH"):
        name = f"{scan}_connectivity.json"
        shutil.copy(real_data_dir / "connectivity" / name, tmp_path / "connectivity" / name)
    assert NavGraphs(tmp_path).scans == tuple(sorted([SCAN, "8194nk5LbLH"]))
