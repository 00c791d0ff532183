"""Room-to-Room navigation metrics as small pure functions of shortest-path distances.

Every function takes the distances either as a callable ``distance(a, b) -> metres`` on
any hashable nodes, or as an ``[N, N]`` matrix (``ScanGraph.distances``) with the path
given as integer row indices. The definitions follow the official R2R evaluation:

* ``P`` is the agent's trajectory with consecutive repeats removed, ``R`` the reference
  path, ``goal = R[-1]``, ``d`` the shortest-path distance on the navigation graph;
* TL, NE, SR, OSR, SPL: Anderson et al. 2018, "Vision-and-Language Navigation" and
  "On Evaluation of Embodied Navigation Agents";
* nDTW, SDTW: Ilharco et al. 2019, "General Evaluation for Instruction Conditioned
  Navigation using Dynamic Time Warping";
* CLS: Jain et al. 2019, "Stay on the Path: Instruction Fidelity in Vision-and-Language
  Navigation".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np

from envs.constants import SUCCESS_DISTANCE_M

#: Lower bound of SPL's denominator, so that a zero-length episode does not divide by 0.
MIN_SPL_DENOMINATOR_M = 0.01

#: The per-trajectory metrics, in the order tables and summaries list them.
METRIC_NAMES = ("tl", "ne", "sr", "osr", "spl", "ndtw", "sdtw", "cls")

Node = TypeVar("Node", bound=Hashable)
#: ``distance(a, b)`` in metres, or an [N, N] matrix indexed by integer nodes.
Distance = Callable[[Any, Any], float] | np.ndarray


def remove_repeats(path: Sequence[Node]) -> list[Node]:
    """The path without consecutive repeats (an agent that stays put has not moved)."""
    return [node for i, node in enumerate(path) if i == 0 or node != path[i - 1]]


def pairwise_distances(a: Sequence[Any], b: Sequence[Any], distance: Distance) -> np.ndarray:
    """``[len(a), len(b)]`` matrix of ``d(a_i, b_j)``."""
    if isinstance(distance, np.ndarray):
        return distance[np.ix_(np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp))]
    rows = [[float(distance(x, y)) for y in b] for x in a]
    return np.array(rows, dtype=np.float64).reshape(len(a), len(b))


def step_distances(path: Sequence[Any], distance: Distance) -> np.ndarray:
    """``[len(path) - 1]`` distances between consecutive nodes."""
    if isinstance(distance, np.ndarray):
        ix = np.asarray(path, dtype=np.intp)
        return distance[ix[:-1], ix[1:]]
    return np.array(
        [distance(a, b) for a, b in zip(path[:-1], path[1:], strict=True)], dtype=np.float64
    )


def path_length(path: Sequence[Any], distance: Distance) -> float:
    """TL: the sum of distances between consecutive nodes (Anderson et al. 2018)."""
    return float(step_distances(path, distance).sum())


def navigation_error(path: Sequence[Any], goal: Any, distance: Distance) -> float:
    """NE: distance from the last node of the path to the goal (Anderson et al. 2018)."""
    return float(pairwise_distances(path[-1:], [goal], distance)[0, 0])


def oracle_error(path: Sequence[Any], goal: Any, distance: Distance) -> float:
    """Smallest distance to the goal of any node on the path (OSR's error; Anderson et al. 2018)."""
    return float(pairwise_distances(path, [goal], distance).min())


def is_success(error: float, threshold: float = SUCCESS_DISTANCE_M) -> bool:
    """Success: stopped strictly closer than ``threshold`` m to the goal (Anderson et al. 2018)."""
    return error < threshold


def spl(success: bool, shortest: float, length: float) -> float:
    """Success weighted by Path Length (Anderson et al. 2018, "On Evaluation of Embodied ...").

    ``SR * d(start, goal) / max(TL, d(start, goal), MIN_SPL_DENOMINATOR_M)``.
    """
    if not success:
        return 0.0
    return shortest / max(length, shortest, MIN_SPL_DENOMINATOR_M)


def dtw(costs: np.ndarray) -> float:
    """Dynamic Time Warping distance of a cost matrix ``costs[i, j] = d(P_i, R_j)`` ``[|P|, |R|]``.

    The cheapest monotone alignment from ``(0, 0)`` to ``(|P|-1, |R|-1)`` with steps
    (1, 0), (0, 1), (1, 1) (Ilharco et al. 2019). Rows are computed one at a time, each
    vectorized: with ``b[j] = min(D[i-1, j], D[i-1, j-1])`` and ``S = cumsum(costs[i])``,
    ``D[i, j] = min_k<=j (b[k] + S[j] - S[k-1]) = S[j] + cummin(b + costs[i] - S)[j]``.
    Unreachable pairs (``inf``) are allowed; the result is ``inf`` when every alignment
    needs one.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if costs.ndim != 2 or 0 in costs.shape:
        raise ValueError(f"dtw needs a non-empty [P, R] cost matrix, got shape {costs.shape}")
    finite = np.isfinite(costs)
    # Any alignment visits each cell at most once, so one touching a `big` cell costs more
    # than every all-finite alignment: `big` stands in for inf without inf - inf = nan.
    big = float(costs[finite].sum()) + 1.0 if not finite.all() else math.inf
    costs = np.where(finite, costs, big)
    prev = np.full(costs.shape[1] + 1, math.inf)  # [R + 1] row -1, padded on the left
    prev[0] = 0.0
    for row in costs:  # row: [R]
        best_before = np.minimum(prev[1:], prev[:-1])  # [R]: min(D[i-1, j], D[i-1, j-1])
        cumulative = np.cumsum(row)  # [R]
        current = cumulative + np.minimum.accumulate(best_before + row - cumulative)  # [R]
        prev = np.concatenate(([math.inf], current))
    result = float(prev[-1])
    return math.inf if result >= big else max(result, 0.0)


def ndtw(
    path: Sequence[Any],
    reference: Sequence[Any],
    distance: Distance,
    threshold: float = SUCCESS_DISTANCE_M,
) -> float:
    """Normalized DTW, ``exp(-DTW(P, R) / (|R| * threshold))`` (Ilharco et al. 2019)."""
    path = remove_repeats(path)
    costs = pairwise_distances(path, reference, distance)  # [P, R]
    return math.exp(-dtw(costs) / (len(reference) * threshold))


def sdtw(
    path: Sequence[Any],
    reference: Sequence[Any],
    distance: Distance,
    threshold: float = SUCCESS_DISTANCE_M,
) -> float:
    """Success weighted by nDTW: ``SR * nDTW`` (Ilharco et al. 2019)."""
    if not is_success(navigation_error(path, reference[-1], distance), threshold):
        return 0.0
    return ndtw(path, reference, distance, threshold)


def path_coverage(
    path: Sequence[Any],
    reference: Sequence[Any],
    distance: Distance,
    threshold: float = SUCCESS_DISTANCE_M,
) -> float:
    """PC: mean over ``r`` in R of ``exp(-min_p d(r, p) / threshold)`` (Jain et al. 2019)."""
    costs = pairwise_distances(path, reference, distance)  # [P, R]
    return float(np.exp(-costs.min(axis=0) / threshold).mean())


def length_score(coverage: float, reference_length: float, length: float) -> float:
    """LS = EPL / (EPL + |EPL - TL|) with EPL = PC * length(R) (Jain et al. 2019).

    When EPL and TL are both 0 (a one-node reference, an agent that never moved) the
    lengths agree perfectly and LS is 1.
    """
    expected = coverage * reference_length
    denominator = expected + abs(expected - length)
    return 1.0 if denominator == 0.0 else expected / denominator


def cls(
    path: Sequence[Any],
    reference: Sequence[Any],
    distance: Distance,
    threshold: float = SUCCESS_DISTANCE_M,
) -> float:
    """Coverage weighted by Length Score, ``PC * LS`` (Jain et al. 2019)."""
    path = remove_repeats(path)
    coverage = path_coverage(path, reference, distance, threshold)
    ref_length = path_length(reference, distance)
    return coverage * length_score(coverage, ref_length, path_length(path, distance))


def trajectory_metrics(
    trajectory: Sequence[Any],
    reference: Sequence[Any],
    distance: Distance,
    threshold: float = SUCCESS_DISTANCE_M,
) -> dict[str, float]:
    """All of :data:`METRIC_NAMES` for one trajectory, plus ``steps`` (moves made).

    Computes the ``[|P|, |R|]`` distance matrix once. The start is ``reference[0]`` (the
    evaluation checks that the trajectory starts there); SR and OSR are 0.0 or 1.0.
    """
    path = remove_repeats(trajectory)
    costs = pairwise_distances(path, reference, distance)  # [P, R]
    to_goal = costs[:, -1]  # [P]
    length = path_length(path, distance)
    error = float(to_goal[-1])
    success = is_success(error, threshold)
    shortest = float(pairwise_distances(reference[:1], reference[-1:], distance)[0, 0])
    normalized = math.exp(-dtw(costs) / (len(reference) * threshold))
    coverage = float(np.exp(-costs.min(axis=0) / threshold).mean())
    ref_length = path_length(reference, distance)
    return {
        "tl": length,
        "ne": error,
        "sr": float(success),
        "osr": float(is_success(float(to_goal.min()), threshold)),
        "spl": spl(success, shortest, length),
        "ndtw": normalized,
        "sdtw": normalized if success else 0.0,
        "cls": coverage * length_score(coverage, ref_length, length),
        "steps": len(path) - 1,
    }
