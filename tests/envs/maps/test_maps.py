"""Top-down maps (envs.maps, `clipvil map`) on real Matterport scans and a hand-made house."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.graph import NavGraphs
from envs.maps import MAP_HEIGHT_PX, MAP_WIDTH_PX, draw_map, render_map
from envs.maps.data import gather_map_data, info_lines
from envs.maps.layers import (
    EDGE_COLOUR,
    FLOOR_MARGIN_M,
    PREDICTION_COLOUR,
    REFERENCE_COLOUR,
    ROOM_PALENESS,
    faded_viewpoints,
)
from envs.maps.scene import load_scene
from envs.synthetic.vocabulary import COLOURS
from vln_agent.cli import EXIT_BAD_INPUT, main

#: A real val_seen path on a multi-floor scan (camera heights 0.7 m .. 5.5 m).
REAL_SCAN = "vyrNrziPKCB"
REAL_PATH_ID = 5593
#: A real scan whose viewpoints all lie on one floor.
FLAT_SCAN = "2t7WUuJeko7"

SYNTH_SCAN = "synth_house"
SYNTH_PATH_ID = 7
LIVING_FLOOR = (140, 90, 60)
KITCHEN_FLOOR = (200, 200, 190)


def colour_pixels(png: Path, colour: str | tuple[int, int, int], tol: int = 10) -> int:
    """How many pixels of ``png`` are within ``tol`` (per channel) of ``colour``."""
    rgb = np.array(to_rgb(colour)) * 255 if isinstance(colour, str) else np.array(colour)
    img = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)  # [H, W, 3]
    return int((np.abs(img - rgb).max(axis=-1) <= tol).sum())


def pale(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (round(c + (255 - c) * ROOM_PALENESS) for c in rgb)
    return r, g, b


def check_png(png: Path) -> None:
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert img.size == (MAP_WIDTH_PX, MAP_HEIGHT_PX)
    assert colour_pixels(png, EDGE_COLOUR) > 100  # the graph's edges are drawn


def real_episode(real_data_dir: Path):
    return next(ep for ep in load_episodes(real_data_dir, "val_seen") if ep.path_id == REAL_PATH_ID)


def write_predictions(path: Path, entries: dict[str, list[str]]) -> Path:
    data = [
        {"instr_id": instr_id, "trajectory": [[vp, 0.0, 0.0] for vp in viewpoints]}
        for instr_id, viewpoints in entries.items()
    ]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- a hand-made synthetic data root: two rooms, one door, four viewpoints in a row ---


def _pose(x: float, y: float, z: float) -> list[float]:
    return [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]


def make_synthetic_root(root: Path) -> Path:
    """connectivity + R2R + scenes files of a two-room house."""
    points = {"vp_a": (1.5, 2.0), "vp_b": (3.5, 2.0), "vp_c": (6.0, 2.0), "vp_d": (8.0, 2.0)}
    ids = list(points)
    chain = {(i, j) for i in range(len(ids)) for j in range(len(ids)) if abs(i - j) == 1}
    connectivity = [
        {
            "image_id": vp,
            "pose": _pose(*points[vp], 1.5),
            "included": True,
            "visible": [(i, j) in chain for j in range(len(ids))],
            "unobstructed": [(i, j) in chain for j in range(len(ids))],
            "height": 1.5,
        }
        for i, vp in enumerate(ids)
    ]
    (root / "connectivity").mkdir(parents=True)
    (root / "connectivity" / f"{SYNTH_SCAN}_connectivity.json").write_text(json.dumps(connectivity))
    episode = {
        "distance": 6.5,
        "scan": SYNTH_SCAN,
        "path_id": SYNTH_PATH_ID,
        "path": ids,
        "heading": 1.57,
        "instructions": ["Walk through the door into the kitchen and stop by the fridge."],
    }
    (root / "R2R_train.json").write_text(json.dumps([episode]))
    scene = {
        "scan": SYNTH_SCAN,
        "rooms": [
            {"id": 0, "type": "living room", "bounds": [0, 0, 5, 4], "floor_material": "wooden",
             "floor_color": list(LIVING_FLOOR), "wall_color": [230, 215, 190]},
            {"id": 1, "type": "kitchen", "bounds": [5, 0, 9, 4], "floor_material": "tiled",
             "floor_color": list(KITCHEN_FLOOR), "wall_color": [240, 230, 180]},
        ],
        "doors": [{"id": 0, "rooms": [0, 1], "center": [5, 2], "width": 1.0, "axis": "y"}],
        "objects": [
            {"id": 0, "category": "sofa", "color": "red", "size": "medium", "room": 0,
             "bounds": [0.5, 3.0, 0.0, 2.5, 3.9, 0.85]},
            {"id": 1, "category": "fridge", "color": "blue", "size": "large", "room": 1,
             "bounds": [8.0, 0.1, 0.0, 8.9, 0.9, 1.8]},
        ],
        "viewpoints": [
            {"id": vp, "room": 0 if x < 5 else 1, "position": [x, y, 1.5], "doorway": False,
             "views": []}
            for vp, (x, y) in points.items()
        ],
    }  # fmt: skip
    (root / "scenes").mkdir()
    (root / "scenes" / f"{SYNTH_SCAN}.json").write_text(json.dumps(scene))
    return root


@pytest.fixture
def synth_root(tmp_path: Path) -> Path:
    return make_synthetic_root(tmp_path / "data")


# --- real Matterport scans ---


def test_real_scan_graph_only(real_data_dir: Path, tmp_path: Path) -> None:
    out = draw_map(real_data_dir, REAL_SCAN, tmp_path / "plain.png")
    assert out == tmp_path / "plain.png"
    check_png(out)
    assert colour_pixels(out, REFERENCE_COLOUR) == 0  # no path asked for, none drawn
    assert colour_pixels(out, PREDICTION_COLOUR) == 0


def test_real_scan_path_and_shortest_path_prediction(real_data_dir: Path, tmp_path: Path) -> None:
    ep = real_episode(real_data_dir)
    graph = NavGraphs(real_data_dir)[REAL_SCAN]
    shortest = graph.shortest_path(ep.start, ep.goal)
    preds = write_predictions(tmp_path / "preds.json", {ep.instr_id: shortest})
    out = tmp_path / "maps" / "pred.png"
    code = main(
        [
            "map",
            "--data",
            str(real_data_dir),
            "--scan",
            REAL_SCAN,
            "--path-id",
            str(REAL_PATH_ID),
            "--predictions",
            str(preds),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    check_png(out)
    assert colour_pixels(out, REFERENCE_COLOUR) > 200
    assert colour_pixels(out, PREDICTION_COLOUR) > 50
    lines = info_lines(gather_map_data(real_data_dir, REAL_SCAN, REAL_PATH_ID, preds))
    assert f"trajectory length {graph.distance(ep.start, ep.goal):.2f} m" in "\n".join(lines)
    assert "final distance to goal 0.00 m (success)" in lines
    assert "path 5593  (R2R_val_seen.json)" in lines


def test_real_hand_made_trajectory_distances(real_data_dir: Path, tmp_path: Path) -> None:
    ep = real_episode(real_data_dir)
    graph = NavGraphs(real_data_dir)[REAL_SCAN]
    detour = next(vp for vp in graph.neighbours(ep.path[1]) if vp not in ep.path)
    # Turning in place repeats a viewpoint in the official format; the map walks it once.
    steps = [ep.path[0], ep.path[1], ep.path[1], detour]
    preds = write_predictions(tmp_path / "preds.json", {ep.instr_id: steps})
    data = gather_map_data(real_data_dir, REAL_SCAN, REAL_PATH_ID, preds)
    assert data.trajectory is not None
    assert data.trajectory.viewpoints == (ep.path[0], ep.path[1], detour)
    walked = graph.distance(ep.path[0], ep.path[1]) + graph.distance(ep.path[1], detour)
    error = graph.distance(detour, ep.goal)
    lines = info_lines(data)
    assert f"trajectory length {walked:.2f} m, 2 steps" in lines
    verdict = "success" if error < 3.0 else "failure"
    assert f"final distance to goal {error:.2f} m ({verdict})" in lines
    fig = render_map(data)  # map, close-up of the short route, colour bar of heights
    assert len(fig.axes) == 3


def test_instruction_choice(real_data_dir: Path, tmp_path: Path) -> None:
    ep = real_episode(real_data_dir)
    route = [ep.start, ep.path[1]]
    preds = write_predictions(tmp_path / "p.json", {"5593_2": route, "5593_1": route})
    default = gather_map_data(real_data_dir, REAL_SCAN, REAL_PATH_ID, preds)
    assert default.trajectory is not None and default.trajectory.instr_id == "5593_1"
    assert default.episode is not None and default.episode.instr_id == "5593_1"
    chosen = gather_map_data(real_data_dir, REAL_SCAN, None, preds, instr_id="5593_2")
    assert chosen.trajectory is not None and chosen.trajectory.instr_id == "5593_2"
    assert chosen.episodes[0].path_id == REAL_PATH_ID  # the path comes from the instr_id
    assert chosen.trajectory.viewpoints == tuple(route)


def test_multi_floor_fades_other_floors(real_data_dir: Path) -> None:
    graphs = NavGraphs(real_data_dir)
    graph, ep = graphs[REAL_SCAN], real_episode(real_data_dir)
    faded = faded_viewpoints(graph, ep.path)
    route_z = graph.positions[[graph.index[vp] for vp in ep.path], 2]
    z = graph.positions[:, 2]
    assert faded.any() and not faded.all()
    assert not faded[[graph.index[vp] for vp in ep.path]].any()
    far = np.maximum(route_z.min() - z, z - route_z.max())  # [N] metres off the route's floor
    np.testing.assert_array_equal(faded, far > FLOOR_MARGIN_M)
    assert not faded_viewpoints(graph, []).any()  # no route: every floor drawn
    flat = graphs[FLAT_SCAN]
    assert not faded_viewpoints(flat, [flat.viewpoint_ids[0]]).any()


def test_test_split_path_has_no_goal(real_data_dir: Path, tmp_path: Path) -> None:
    ep = load_episodes(real_data_dir, "test")[0]
    data = gather_map_data(real_data_dir, ep.scan, ep.path_id)
    assert data.reference == (ep.start,)
    assert "no goal in this split (test)" in info_lines(data)
    check_png(draw_map(real_data_dir, ep.scan, tmp_path / "test.png", path_id=ep.path_id))


# --- the synthetic world's scene layout ---


def test_synthetic_scene_map(synth_root: Path, tmp_path: Path) -> None:
    scene = load_scene(synth_root, SYNTH_SCAN)
    assert scene is not None
    assert [r.type for r in scene.rooms] == ["living room", "kitchen"]
    assert scene.objects[1].footprint == (8.0, 0.1, 8.9, 0.9)
    out = tmp_path / "synth.png"
    assert (
        main(
            [
                "map",
                "--data",
                str(synth_root),
                "--scan",
                SYNTH_SCAN,
                "--path-id",
                str(SYNTH_PATH_ID),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    check_png(out)
    assert colour_pixels(out, pale(LIVING_FLOOR), tol=3) > 10_000  # rooms fill the map
    assert colour_pixels(out, pale(KITCHEN_FLOOR), tol=3) > 10_000
    assert colour_pixels(out, COLOURS["red"], tol=3) > 500  # the sofa
    assert colour_pixels(out, COLOURS["blue"], tol=3) > 200  # the fridge
    assert colour_pixels(out, REFERENCE_COLOUR) > 200
    lines = info_lines(gather_map_data(synth_root, SYNTH_SCAN, SYNTH_PATH_ID))
    assert "reference length 6.50 m" in lines
    assert len(render_map(gather_map_data(synth_root, SYNTH_SCAN)).axes) == 1  # flat: no bar


def test_real_scan_has_no_scene(real_data_dir: Path) -> None:
    assert load_scene(real_data_dir, REAL_SCAN) is None


def test_bad_scene_names_the_file(synth_root: Path) -> None:
    path = synth_root / "scenes" / f"{SYNTH_SCAN}.json"
    scene = json.loads(path.read_text())
    scene["doors"][0]["axis"] = "z"
    path.write_text(json.dumps(scene))
    with pytest.raises(DataError, match=r"synth_house\.json: doors\[0\]\.axis"):
        load_scene(synth_root, SYNTH_SCAN)
    scene["doors"][0]["axis"] = "y"
    scene["objects"][0]["color"] = "mauve"
    path.write_text(json.dumps(scene))
    with pytest.raises(DataError, match=r"objects\[0\]\.color 'mauve'"):
        load_scene(synth_root, SYNTH_SCAN)


# --- bad input: exit status 2, one line naming the file, no PNG ---


def _bad_cases(real: Path, tmp: Path) -> list[tuple[list[str], str]]:
    route = list(NavGraphs(real)[REAL_SCAN].viewpoint_ids[:2])
    preds = write_predictions(tmp / "preds.json", {"1_0": route})
    base = ["--data", str(real), "--scan", REAL_SCAN]
    return [
        (["--data", str(real), "--scan", "nope"], "nope_connectivity.json"),
        ([*base, "--path-id", "99999999"], f"{real}: path_id 99999999 is in none of"),
        (["--data", str(real), "--scan", FLAT_SCAN, "--path-id", str(REAL_PATH_ID)],
         "R2R_val_seen.json: path_id 5593 is in scan vyrNrziPKCB"),
        ([*base, "--path-id", str(REAL_PATH_ID), "--predictions", str(preds)],
         f"{preds}: no trajectory for instr_id 5593_0"),
        ([*base, "--path-id", str(REAL_PATH_ID), "--instr-id", "5593_9"],
         "R2R_val_seen.json: instr_id 5593_9 is not an instruction of path 5593"),
        ([*base, "--predictions", str(preds)], f"{preds}: a path id or instr_id is needed"),
        ([*base, "--path-id", str(REAL_PATH_ID), "--predictions", str(tmp / "missing.json")],
         "missing.json: file not found"),
    ]  # fmt: skip


def test_bad_inputs_exit_2_without_png(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, (argv, expected) in enumerate(_bad_cases(real_data_dir, tmp_path)):
        out_dir = tmp_path / f"out{i}"
        code = main(["map", *argv, "--out", str(out_dir / "map.png")])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT, argv
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert expected in err, (expected, err)
        assert not out_dir.exists()  # nothing written, not even a temporary file


def test_trajectory_off_the_scan_is_rejected(synth_root: Path, tmp_path: Path) -> None:
    preds = write_predictions(tmp_path / "p.json", {f"{SYNTH_PATH_ID}_0": ["vp_a", "elsewhere"]})
    with pytest.raises(DataError, match=r"p\.json: 7_0: viewpoint 'elsewhere' is not in scan"):
        draw_map(synth_root, SYNTH_SCAN, tmp_path / "m.png", SYNTH_PATH_ID, preds)
    assert not (tmp_path / "m.png").exists()


def test_import_is_light() -> None:
    """No torch in ``envs``; no pyplot (global figure state, backend choice) on import."""
    code = (
        "import sys, envs.maps; print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
