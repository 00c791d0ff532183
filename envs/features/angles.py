"""EnvDrop's angle features: the direction of a view or a candidate as 128 numbers.

:func:`angle_feature` encodes a direction as ``[sin h, cos h, sin e, cos e]`` repeated to
:data:`~envs.constants.ANGLE_FEATURE_SIZE` values (R2R-EnvDrop, Tan et al. 2019);
:func:`view_angle_features` gives those of the 36 discretized views relative to the agent's
view. The Gymnasium env appends them to the visual features (``view_angle_features`` and
the last 128 columns of ``candidate_features``).
"""

from __future__ import annotations

import functools

import numpy as np

from envs.constants import ANGLE_FEATURE_SIZE, NUM_VIEWS
from envs.simulator import discrete_view_angles

_ANGLE_REPEATS = ANGLE_FEATURE_SIZE // 4


def angle_feature(heading: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """EnvDrop's angle feature: [sin h, cos h, sin e, cos e] repeated to 128 values.

    Args:
        heading, elevation: [...] radians. Returns [..., 128] float32.
    """
    heading = np.asarray(heading, dtype=np.float64)
    elevation = np.asarray(elevation, dtype=np.float64)
    base = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], -1)
    return np.tile(base, _ANGLE_REPEATS).astype(np.float32)  # [..., 128]


@functools.lru_cache(maxsize=NUM_VIEWS)
def view_angle_features(base_view: int) -> np.ndarray:
    """[36, 128] angle features of the 36 views relative to the heading of ``base_view``.

    EnvDrop's ``get_point_angle_feature``: heading relative to the agent's current heading,
    absolute elevation.
    """
    heading, elevation = discrete_view_angles(np.arange(NUM_VIEWS))
    base_heading, _ = discrete_view_angles(np.array(base_view))
    features = angle_feature(heading - base_heading, elevation)
    features.setflags(write=False)
    return features
