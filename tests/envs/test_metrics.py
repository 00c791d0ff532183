"""The R2R metrics on graphs small enough to compute by hand."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from envs.metrics import (
    cls,
    dtw,
    is_success,
    length_score,
    navigation_error,
    ndtw,
    oracle_error,
    pairwise_distances,
    path_coverage,
    path_length,
    remove_repeats,
    sdtw,
    spl,
    trajectory_metrics,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# A line A - B - C - D - E with edges of 1, 2, 3 and 4 m: positions 0, 1, 3, 6, 10.
LINE_POSITIONS = {"A": 0.0, "B": 1.0, "C": 3.0, "D": 6.0, "E": 10.0}


def line_distance(a: str, b: str) -> float:
    return abs(LINE_POSITIONS[a] - LINE_POSITIONS[b])


def grid_distance():
    """Unit-edge 3 x 4 grid (nodes (x, y), x < 4, y < 3), shortest path lengths."""
    lengths = dict(nx.all_pairs_dijkstra_path_length(nx.grid_graph(dim=[3, 4])))
    return lambda a, b: float(lengths[a][b])


def naive_dtw(costs: np.ndarray) -> float:
    """Textbook O(P R) DTW with explicit loops, to check the vectorized one against."""
    n, m = costs.shape
    table = np.full((n + 1, m + 1), math.inf)
    table[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best = min(table[i - 1, j], table[i, j - 1], table[i - 1, j - 1])
            table[i, j] = costs[i - 1, j - 1] + best
    return float(table[n, m])


def test_grid_example_of_ilharco_et_al():
    distance = grid_distance()
    prediction = [(0, 0), (1, 0), (2, 0), (3, 0)]
    reference = [(0, 0), (1, 0), (2, 1), (3, 2)]
    assert dtw(pairwise_distances(prediction, reference, distance)) == pytest.approx(3.0)
    assert ndtw(prediction, reference, distance) == pytest.approx(math.exp(-0.25))
    # Success: (3, 0) is 2 m from the goal (3, 2).
    assert sdtw(prediction, reference, distance) == pytest.approx(math.exp(-0.25))


def test_matrix_and_callable_distances_agree():
    distance = grid_distance()
    nodes = [(x, y) for x in range(4) for y in range(3)]
    matrix = np.array([[distance(a, b) for b in nodes] for a in nodes])  # [12, 12]
    index = {node: i for i, node in enumerate(nodes)}
    prediction = [(0, 0), (1, 0), (1, 0), (2, 0), (3, 0), (3, 1)]
    reference = [(0, 0), (1, 0), (2, 1), (3, 2)]
    by_callable = trajectory_metrics(prediction, reference, distance)
    by_matrix = trajectory_metrics(
        [index[n] for n in prediction], [index[n] for n in reference], matrix
    )
    assert by_matrix == pytest.approx(by_callable)
    assert by_callable["tl"] == 4.0
    assert by_callable["steps"] == 4


def test_remove_repeats_only_removes_consecutive_ones():
    assert remove_repeats(["A", "A", "B", "B", "B", "A", "C", "C"]) == ["A", "B", "A", "C"]
    assert remove_repeats([]) == []


def test_repeats_change_no_metric():
    reference = ["A", "B", "C"]
    plain = trajectory_metrics(["A", "B", "D"], reference, line_distance)
    stuttering = trajectory_metrics(["A", "A", "B", "B", "B", "D", "D"], reference, line_distance)
    assert stuttering == plain
    assert plain["steps"] == 2
    # Without removal the two extra B's would each add d(B, A) = 1 to the DTW.
    assert ndtw(["A", "B", "B", "B", "D"], ["A", "D"], line_distance) == ndtw(
        ["A", "B", "D"], ["A", "D"], line_distance
    )


def test_path_length_navigation_error_and_success_on_the_line():
    path = ["A", "B", "C", "B"]
    assert path_length(path, line_distance) == 5.0  # 1 + 2 + 2
    assert path_length(["C"], line_distance) == 0.0
    assert navigation_error(path, "D", line_distance) == 5.0  # from B
    assert oracle_error(path, "D", line_distance) == 3.0  # from C
    assert not is_success(3.0)  # the threshold is strict: exactly 3 m is a failure
    assert is_success(2.999)
    metrics = trajectory_metrics(path, ["A", "D"], line_distance)
    assert metrics["sr"] == 0.0 and metrics["osr"] == 0.0 and metrics["spl"] == 0.0
    assert metrics["sdtw"] == 0.0
    nearly = trajectory_metrics(["A", "B", "C"], ["A", "B", "C", "D", "E"], line_distance)
    assert nearly["ne"] == 7.0 and nearly["sr"] == 0.0


def test_oracle_success_counts_any_visited_viewpoint():
    # Passes through D (the goal) then walks on to E, 4 m away: OSR but no SR.
    metrics = trajectory_metrics(["A", "B", "C", "D", "E"], ["A", "B", "C", "D"], line_distance)
    assert metrics["ne"] == 4.0
    assert (metrics["sr"], metrics["osr"]) == (0.0, 1.0)


def test_spl_hand_values_and_edge_cases():
    assert spl(True, 4.0, 8.0) == 0.5
    assert spl(True, 4.0, 4.0) == 1.0
    assert spl(True, 4.0, 2.0) == 1.0  # the denominator never drops below d(start, goal)
    assert spl(False, 4.0, 4.0) == 0.0
    assert spl(True, 0.0, 0.0) == 0.0  # start == goal: 0 / max(0, 0, 0.01)
    assert spl(True, 0.005, 0.0) == 0.5  # the 0.01 m floor of the denominator
    # On the line: start A, goal C (3 m), walked A B C B C = 7 m, stops at C.
    metrics = trajectory_metrics(["A", "B", "C", "B", "C"], ["A", "B", "C"], line_distance)
    assert metrics["tl"] == 7.0 and metrics["sr"] == 1.0
    assert metrics["spl"] == pytest.approx(3.0 / 7.0)


def test_dtw_hand_values():
    costs = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])  # [3, 2]
    assert dtw(costs) == 1.0  # (0,0) -> (1,1) -> (2,1): 0 + 0 + 1
    assert dtw(np.array([[5.0]])) == 5.0
    assert dtw(np.array([[1.0, 2.0, 3.0]])) == 6.0  # one row: every cell is visited
    assert dtw(np.zeros((4, 4))) == 0.0


def test_dtw_with_unreachable_pairs():
    inf = math.inf
    assert dtw(np.array([[0.0, inf], [inf, 0.0]])) == 0.0  # the diagonal avoids both
    assert dtw(np.array([[1.0, inf], [inf, inf]])) == inf
    assert dtw(np.array([[inf]])) == inf
    assert ndtw(["A"], ["B"], lambda a, b: inf) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        dtw(np.zeros((0, 3)))


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 7), st.integers(1, 7)),
        elements=st.floats(0.0, 30.0, allow_nan=False),
    )
)
def test_vectorized_dtw_matches_the_textbook_recurrence(costs):
    assert dtw(costs) == pytest.approx(naive_dtw(costs), rel=1e-12, abs=1e-9)


def test_ndtw_is_one_exactly_for_the_reference_itself():
    reference = ["A", "B", "C", "D"]
    assert ndtw(reference, reference, line_distance) == 1.0
    assert cls(reference, reference, line_distance) == 1.0
    assert sdtw(reference, reference, line_distance) == 1.0


def test_ndtw_hand_value_on_the_line():
    # P = A C, R = A B C: alignment A-A (0), A-B or C-B (1 / 2), C-C (0) -> DTW 1.
    value = ndtw(["A", "C"], ["A", "B", "C"], line_distance)
    assert value == pytest.approx(math.exp(-1.0 / (3 * 3.0)))


def test_cls_hand_value_on_the_line():
    # P = A B (TL 1 m), R = A B C (length 3 m): C is 2 m from the nearest p (B).
    coverage = (1.0 + 1.0 + math.exp(-2.0 / 3.0)) / 3.0  # 0.83781
    assert path_coverage(["A", "B"], ["A", "B", "C"], line_distance) == pytest.approx(coverage)
    expected = coverage * 3.0  # EPL = 2.51342
    ls = expected / (expected + (expected - 1.0))  # 0.62417
    assert ls == pytest.approx(0.62417, abs=1e-5)
    assert cls(["A", "B"], ["A", "B", "C"], line_distance) == pytest.approx(coverage * ls)
    assert cls(["A", "B"], ["A", "B", "C"], line_distance) == pytest.approx(0.52293, abs=1e-5)


def test_cls_penalizes_overshooting_even_with_full_coverage():
    # Walks A..E (10 m) for a reference A..C (3 m): PC = 1, LS = 3 / (3 + 7) = 0.3.
    assert cls(["A", "B", "C", "D", "E"], ["A", "B", "C"], line_distance) == pytest.approx(0.3)


def test_length_score_edge_cases():
    assert length_score(1.0, 0.0, 0.0) == 1.0  # nothing expected, nothing walked
    assert length_score(0.5, 4.0, 2.0) == 1.0  # EPL = 2 = TL
    assert length_score(1.0, 4.0, 0.0) == 0.5  # 4 / (4 + 4)


def test_trajectory_metrics_agree_with_the_single_functions():
    path, reference = ["A", "B", "C", "D", "C"], ["A", "B", "D"]
    metrics = trajectory_metrics(path, reference, line_distance)
    assert metrics["ndtw"] == pytest.approx(ndtw(path, reference, line_distance))
    assert metrics["sdtw"] == pytest.approx(sdtw(path, reference, line_distance))
    assert metrics["cls"] == pytest.approx(cls(path, reference, line_distance))
    assert metrics["tl"] == 9.0 and metrics["ne"] == 3.0 and metrics["sr"] == 0.0
    assert metrics["osr"] == 1.0


def test_metrics_modules_do_not_import_torch():
    code = "import sys, envs.metrics, envs.evaluate; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
