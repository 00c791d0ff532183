"""The synthetic world as a data root: Matterport connectivity, R2R splits, manifest, CLI."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from envs.constants import R2R_SPLITS
from envs.cubemap import upright_rotation
from envs.episodes import load_episodes
from envs.errors import DataError
from envs.graph import NavGraphs
from envs.synthetic.layout import WALL_THICKNESS
from envs.synthetic.paths import PATH_LENGTH_M, PATH_VIEWPOINTS
from envs.synthetic.presets import PRESETS
from envs.synthetic.viewpoints import (
    BODY_RADIUS,
    MAX_EDGE_LENGTH,
    MIN_SPACING,
    OBSTACLE_MAX_BOTTOM,
    OBSTACLE_MIN_TOP,
)
from envs.synthetic.writer import build_world
from vln_agent.cli import main

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
SCAN_ID = re.compile(r"^[A-Za-z0-9]{11}$")
#: Step (m) when walking along an edge to check it against walls and objects.
WALK_STEP = 0.02
#: Temporary files that atomic writes killed halfway leave in a world's root.
KILLED_WRITES = (
    ".R2R_train.json.1f2e3d4c.tmp",
    ".manifest.json.5a6b7c8d.tmp",
    "..world-build.0a0b0c0d.tmp",  # the marker is itself a dot file
)


def scenes(world: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((world / "scenes").glob("*.json"))}


def r2r(world: Path, split: str) -> list[dict]:
    return json.loads((world / f"R2R_{split}.json").read_text())


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---------------------------------------------------------------------------- connectivity


def test_connectivity_files_follow_matterport_format(tiny_world):
    scans = (tiny_world / "connectivity" / "scans.txt").read_text().split()
    assert len(scans) == PRESETS["tiny"].total_houses and scans == sorted(scans)
    for scan in scans:
        assert SCAN_ID.match(scan)
        entries = json.loads(
            (tiny_world / "connectivity" / f"{scan}_connectivity.json").read_text()
        )
        n = len(entries)
        for entry in entries:
            assert set(entry) == {
                "image_id",
                "pose",
                "included",
                "visible",
                "unobstructed",
                "height",
            }
            assert HEX_ID.match(entry["image_id"]) and entry["included"] is True
            assert len(entry["visible"]) == n and len(entry["unobstructed"]) == n
            pose = np.array(entry["pose"]).reshape(4, 4)
            np.testing.assert_allclose(pose[3], [0, 0, 0, 1])
            rotation = pose[:3, :3]
            yaw = math.atan2(rotation[1, 0], rotation[0, 0])
            np.testing.assert_allclose(rotation, upright_rotation(yaw), atol=2e-6)
            assert 1.4 < entry["height"] < 1.7 and entry["height"] == pytest.approx(pose[2, 3])


def test_graphs_load_and_are_symmetric_connected_and_r2r_like(tiny_world):
    graphs = NavGraphs(tiny_world)
    degrees, lengths = [], []
    for scan in graphs:
        graph = graphs[scan]
        assert (graph.unobstructed == graph.unobstructed.T).all()
        assert not graph.unobstructed.diagonal().any()
        assert np.isfinite(graph.distances).all(), f"{scan} is not connected"
        rows, cols = np.nonzero(np.triu(graph.adjacency))
        lengths += list(np.linalg.norm(graph.positions[rows] - graph.positions[cols], axis=1))
        degrees += list(graph.adjacency.sum(axis=1))
        gaps = np.linalg.norm(graph.positions[:, None, :2] - graph.positions[None, :, :2], axis=2)
        np.fill_diagonal(gaps, np.inf)
        assert gaps.min() >= MIN_SPACING - 1e-6
    assert max(lengths) <= MAX_EDGE_LENGTH + 0.2  # plan length <= 4 m, heights differ a little
    assert min(lengths) >= MIN_SPACING - 1e-6
    assert 2.0 <= np.mean(degrees) <= 6.0


def _blocked_by_wall(point: np.ndarray, scene: dict) -> bool:
    """Whether a plan point lies in a wall (near a room boundary and not in a door opening)."""
    reach = WALL_THICKNESS / 2 + BODY_RADIUS - 0.02
    for door in scene["doors"]:
        along, across = (0, 1) if door["axis"] == "x" else (1, 0)
        if abs(point[along] - door["center"][along]) < door["width"] / 2 - BODY_RADIUS and (
            abs(point[across] - door["center"][across]) < reach
        ):
            return False  # in the opening
    for room in scene["rooms"]:
        xmin, ymin, xmax, ymax = room["bounds"]
        inside_x, inside_y = (
            xmin - reach < point[0] < xmax + reach,
            ymin - reach < point[1] < ymax + reach,
        )
        near_x = min(abs(point[0] - xmin), abs(point[0] - xmax)) < reach
        near_y = min(abs(point[1] - ymin), abs(point[1] - ymax)) < reach
        if (near_x and inside_y) or (near_y and inside_x):
            return True
    return False


def test_edges_have_a_clear_line_of_sight(tiny_world):
    """Walk every edge: it passes walls only through door openings, and no standing object."""
    graphs = NavGraphs(tiny_world)
    for scan, scene in scenes(tiny_world).items():
        graph = graphs[scan]
        blockers = [
            o["bounds"]
            for o in scene["objects"]
            if o["category"] != "rug"
            and o["bounds"][2] < OBSTACLE_MAX_BOTTOM
            and o["bounds"][5] > OBSTACLE_MIN_TOP
        ]
        for i, j in zip(*np.nonzero(np.triu(graph.adjacency)), strict=True):
            a, b = graph.positions[i, :2], graph.positions[j, :2]
            steps = int(np.linalg.norm(b - a) / WALK_STEP) + 1
            for point in a + np.linspace(0.0, 1.0, steps)[:, None] * (b - a):
                assert not _blocked_by_wall(point, scene), (scan, i, j, point)
                for xmin, ymin, _, xmax, ymax, _ in blockers:
                    assert not (xmin < point[0] < xmax and ymin < point[1] < ymax), (scan, i, j)


# ---------------------------------------------------------------------------- R2R splits


def test_r2r_splits_load_and_paths_are_shortest_paths(tiny_world):
    graphs = NavGraphs(tiny_world)
    preset = PRESETS["tiny"]
    for split in ("train", "val_seen", "val_unseen"):
        entries = r2r(tiny_world, split)
        episodes = load_episodes(tiny_world, split)
        assert len(episodes) == preset.instructions_per_path * len(entries)
        for entry in entries:
            assert set(entry) == {"distance", "scan", "path_id", "path", "heading", "instructions"}
            graph, path = graphs[entry["scan"]], entry["path"]
            assert PATH_VIEWPOINTS[0] <= len(path) <= PATH_VIEWPOINTS[1]
            assert graph.shortest_path(path[0], path[-1]) == path
            assert all(graph.is_edge(a, b) for a, b in zip(path, path[1:], strict=False))
            walked = sum(graph.distance(a, b) for a, b in zip(path, path[1:], strict=False))
            assert walked == pytest.approx(entry["distance"], abs=0.01)
            assert PATH_LENGTH_M[0] - 0.01 <= entry["distance"] <= PATH_LENGTH_M[1] + 0.01
            assert 0.0 <= entry["heading"] < 2 * math.pi
            assert len(set(entry["instructions"])) == preset.instructions_per_path
            assert all(len(text.split()) >= 4 for text in entry["instructions"])


def test_test_split_gives_only_the_start(tiny_world):
    graphs = NavGraphs(tiny_world)
    entries = r2r(tiny_world, "test")
    assert len(entries) == PRESETS["tiny"].paths_per_house * PRESETS["tiny"].test_houses
    for entry in entries:
        assert set(entry) == {"scan", "path_id", "path", "heading", "instructions"}
        assert len(entry["path"]) == 1
        graphs[entry["scan"]].require(entry["path"][0])
    episodes = load_episodes(tiny_world, "test")
    assert all(e.distance is None for e in episodes)


def test_splits_are_disjoint_like_r2r(tiny_world):
    scans = {s: {e["scan"] for e in r2r(tiny_world, s)} for s in R2R_SPLITS}
    preset = PRESETS["tiny"]
    assert len(scans["train"]) == preset.train_houses
    assert scans["val_seen"] <= scans["train"]
    assert not scans["val_unseen"] & (scans["train"] | scans["test"])
    assert not scans["test"] & scans["train"]
    pairs = {
        s: {frozenset((e["path"][0], e["path"][-1])) for e in r2r(tiny_world, s)}
        for s in ("train", "val_seen")
    }
    assert not pairs["train"] & pairs["val_seen"]
    ids = [e["path_id"] for s in R2R_SPLITS for e in r2r(tiny_world, s)]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------------------- captions, manifest


def test_captions_reference_real_views(tiny_world):
    captions = json.loads((tiny_world / "captions.json").read_text())
    all_scenes = scenes(tiny_world)
    split_of = {e["scan"]: s for s in ("train", "val_unseen", "test") for e in r2r(tiny_world, s)}
    assert captions
    for record in captions:
        assert set(record) == {"scan", "viewpoint", "view_index", "split", "captions"}
        viewpoints = {v["id"] for v in all_scenes[record["scan"]]["viewpoints"]}
        assert record["viewpoint"] in viewpoints and 0 <= record["view_index"] < 36
        assert record["split"] == split_of[record["scan"]]
        assert len(record["captions"]) == PRESETS["tiny"].captions_per_view
        assert all(isinstance(c, str) and c for c in record["captions"])


def test_manifest_counts_match_the_files(tiny_world):
    manifest = json.loads((tiny_world / "manifest.json").read_text())
    preset = PRESETS["tiny"]
    assert manifest["preset"] == "tiny" and manifest["seed"] == 0
    assert manifest["face_size"] == preset.face_size
    counts = manifest["counts"]
    assert counts["houses"] == {"train": 3, "val_unseen": 1, "test": 1}
    graphs = NavGraphs(tiny_world)
    assert counts["viewpoints"] == sum(len(graphs[s]) for s in graphs)
    assert counts["edges"] == sum(int(np.triu(graphs[s].adjacency).sum()) for s in graphs)
    assert counts["images"] == len(list((tiny_world / "v1" / "scans").rglob("*_skybox*_sami.jpg")))
    assert counts["images"] == 6 * counts["viewpoints"]
    for split in R2R_SPLITS:
        entries = r2r(tiny_world, split)
        assert counts["paths"][split] == len(entries)
        assert counts["instructions"][split] == sum(len(e["instructions"]) for e in entries)
    assert counts["captions"] == len(json.loads((tiny_world / "captions.json").read_text()))
    assert not (tiny_world / ".world-build").exists()


def test_matching_manifest_is_reused_without_rebuilding(tiny_world):
    before = {p: p.stat().st_mtime_ns for p in tiny_world.rglob("*.json")}
    manifest = build_world(tiny_world, preset="tiny", seed=0)
    assert manifest == json.loads((tiny_world / "manifest.json").read_text())
    assert before == {p: p.stat().st_mtime_ns for p in tiny_world.rglob("*.json")}
    assert main(["world", "--out", str(tiny_world), "--preset", "tiny", "--seed", "0"]) == 0


def test_same_seed_same_bytes_other_seed_rebuilds_cleanly(tiny_world, tmp_path):
    """Two workers give the very same files; a different seed replaces them all."""
    copy = tmp_path / "world"
    build_world(copy, preset="tiny", seed=0, workers=2)
    assert all_files(copy) == all_files(tiny_world)
    old_scans = set((copy / "connectivity" / "scans.txt").read_text().split())
    manifest = build_world(copy, preset="tiny", seed=1, workers=1)
    assert manifest["seed"] == 1
    new_scans = set((copy / "connectivity" / "scans.txt").read_text().split())
    assert not old_scans & new_scans
    leftovers = [
        p for p in (copy / "connectivity").glob("*.json") if p.name.split("_")[0] in old_scans
    ]
    assert not leftovers and not any((copy / "v1" / "scans" / s).exists() for s in old_scans)
    assert r2r(copy, "train") != r2r(tiny_world, "train")


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_raise_data_error(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        build_world(tmp_path / "w", **{"preset": "tiny", **kwargs})
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "args", [["--preset", "huge"], ["--seed", "-3"], ["--seed", "x"], ["--workers", "0"]]
)
def test_cli_rejects_bad_arguments_with_status_2(tmp_path, args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["world", "--out", str(tmp_path / "w"), *args])
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_foreign_directory_is_not_overwritten(tmp_path, capsys):
    foreign = tmp_path / "real"
    (foreign / "connectivity").mkdir(parents=True)
    keep = foreign / "connectivity" / "scan_connectivity.json"
    keep.write_text("[]")
    assert main(["world", "--out", str(foreign), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to overwrite" in err[0]
    assert keep.read_text() == "[]"


def test_interrupted_build_is_cleared(tiny_world, tmp_path):
    """A directory with the build marker but no manifest is a half-built world: rebuilt."""
    half = tmp_path / "half"
    shutil.copytree(tiny_world, half)
    (half / "manifest.json").unlink()
    (half / ".world-build").write_text("interrupted\n")
    stale = half / "connectivity" / "zzzzzzzzzzz_connectivity.json"
    stale.write_text("[]")
    for name in KILLED_WRITES:  # what atomic writes cut short by a kill leave beside them
        (half / name).write_text("{")
    build_world(half, preset="tiny", seed=0, workers=1)
    assert not stale.exists()
    assert all_files(half) == all_files(tiny_world)


def test_a_finished_world_drops_what_a_kill_after_its_manifest_left(tiny_world, tmp_path):
    """Killed after writing the manifest (or a rebuild killed before removing anything):
    the world is whole; the marker and temporary files go, nothing is rebuilt."""
    done = tmp_path / "done"
    shutil.copytree(tiny_world, done)
    (done / ".world-build").write_text("killed\n")
    for name in KILLED_WRITES:
        (done / name).write_text("{")
    before = (done / "scenes").stat().st_mtime_ns
    build_world(done, preset="tiny", seed=0, workers=1)
    assert all_files(done) == all_files(tiny_world)
    assert (done / "scenes").stat().st_mtime_ns == before
