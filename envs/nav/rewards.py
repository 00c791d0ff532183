"""The reward of a step of the R2R Gymnasium envs (``clipvil/R2R-v0``), for a batch of agents.

``shaped_reward=True`` (R2R-EnvDrop, Tan et al. 2019): STOP gives +2 within
``SUCCESS_DISTANCE_M`` (3 m, strictly closer) of the goal and -2 elsewhere; a move gives
+1 / -1 by the sign of the decrease of the shortest-path distance to the goal.
Otherwise: 1 for a successful STOP, 0 for everything else. Episodes without a reference
path (test split) always get 0.

An agent that neither stops nor moves in a step (it has finished, or its action was
invalid) gets 0 either way. :class:`envs.nav.batch.NavBatch` calls :func:`step_reward`
once per step for all its agents.
"""

from __future__ import annotations

import numpy as np

from envs.metrics import is_success

#: EnvDrop's shaped reward: STOP within the success distance / elsewhere.
STOP_SUCCESS_REWARD = 2.0
STOP_FAILURE_REWARD = -2.0
#: EnvDrop's shaped reward for a move: this times the sign of the decrease of the distance.
MOVE_REWARD = 1.0
#: Unshaped reward: this for a STOP within the success distance, 0 otherwise.
SUCCESS_REWARD = 1.0


def step_reward(
    stop: np.ndarray,
    move: np.ndarray,
    previous_distance: np.ndarray,
    distance: np.ndarray,
    has_goal: np.ndarray,
    shaped: bool,
) -> np.ndarray:
    """[B] reward of one step (0 for agents without a goal, finished or invalid).

    Args:
        stop, move: [B] bool: the agent stopped / moved to a candidate in this step.
        previous_distance, distance: [B] metres to the goal before / after the step.
        has_goal: [B] bool: the agent's episode has a reference path.
        shaped: EnvDrop's shaped reward, else the success reward.
    """
    success = is_success(distance)  # [B] bool (False for NaN)
    if shaped:
        stop_reward = np.where(success, STOP_SUCCESS_REWARD, STOP_FAILURE_REWARD)
        move_reward = MOVE_REWARD * np.sign(previous_distance - distance)
        reward = np.where(stop, stop_reward, np.where(move, move_reward, 0.0))
    else:
        reward = np.where(stop & success, SUCCESS_REWARD, 0.0)
    return np.where(has_goal, reward, 0.0)
