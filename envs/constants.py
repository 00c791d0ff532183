"""Named constants of the Room-to-Room geometry and MatterSim's camera settings.

Every module that needs one of these numbers imports it from here, so the R2R
geometry is written down exactly once.
"""

from __future__ import annotations

import math

#: Number of discretized views in a panorama (12 headings x 3 elevations).
NUM_VIEWS = 36
#: Headings per elevation level in a discretized panorama.
VIEWS_PER_ELEVATION = 12
#: Elevation levels of a discretized panorama: 0 = looking down, 1 = level, 2 = up.
NUM_ELEVATION_LEVELS = 3
#: Index of the level (horizontal) elevation band.
LEVEL_ELEVATION_INDEX = 1
#: Heading step between neighbouring discretized views (30 degrees).
HEADING_INCREMENT = 2.0 * math.pi / VIEWS_PER_ELEVATION
#: Elevation step between elevation levels (30 degrees).
ELEVATION_INCREMENT = math.pi / 6.0

#: R2R camera settings (R2R-EnvDrop, CLIP-ViL): 640 x 480 pixels, 60 degree vertical FOV.
R2R_IMAGE_WIDTH = 640
R2R_IMAGE_HEIGHT = 480
R2R_VFOV = math.radians(60.0)

#: MatterSim's defaults when nothing is set (src/lib/MatterSim.cpp constructor).
MATTERSIM_DEFAULT_WIDTH = 320
MATTERSIM_DEFAULT_HEIGHT = 240
MATTERSIM_DEFAULT_VFOV = 0.8
MATTERSIM_DEFAULT_MIN_ELEVATION = -0.94
MATTERSIM_DEFAULT_MAX_ELEVATION = 0.94

#: An agent that stops within this many metres of the goal succeeds (Anderson et al. 2018).
SUCCESS_DISTANCE_M = 3.0

#: Size of EnvDrop's angle feature: [sin h, cos h, sin e, cos e] repeated 32 times.
ANGLE_FEATURE_SIZE = 128

#: R2R splits shipped with the dataset.
R2R_SPLITS = ("train", "val_seen", "val_unseen", "test")

#: Number of values in a Matterport pose (row-major 4 x 4 matrix).
POSE_SIZE = 16


def view_heading(view_index: int) -> float:
    """Heading in radians of discretized view ``view_index`` (clockwise from +y)."""
    return (view_index % VIEWS_PER_ELEVATION) * HEADING_INCREMENT


def view_elevation(view_index: int) -> float:
    """Elevation in radians of discretized view ``view_index`` (up is positive)."""
    return (view_index // VIEWS_PER_ELEVATION - LEVEL_ELEVATION_INDEX) * ELEVATION_INCREMENT
