"""The step reward of the R2R envs (envs.nav.rewards), on batches small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from envs.constants import SUCCESS_DISTANCE_M
from envs.nav.rewards import step_reward

NAN = np.nan
#: Six agents: STOP at 2.9 m, STOP exactly at the success distance, a move 1 m closer, a move
#: 1 m further, a move that keeps the distance, and one that neither stops nor moves.
STOP = np.array([True, True, False, False, False, False])
MOVE = np.array([False, False, True, True, True, False])
PREVIOUS = np.array([4.0, 3.0, 6.0, 6.0, 6.0, 6.0])
DISTANCE = np.array([2.9, SUCCESS_DISTANCE_M, 5.0, 7.0, 6.0, 6.0])
HAS_GOAL = np.ones(6, dtype=bool)


def test_shaped_reward_is_envdrops():
    reward = step_reward(STOP, MOVE, PREVIOUS, DISTANCE, HAS_GOAL, shaped=True)
    assert reward.tolist() == [2.0, -2.0, 1.0, -1.0, 0.0, 0.0]


def test_unshaped_reward_is_one_for_a_successful_stop_only():
    reward = step_reward(STOP, MOVE, PREVIOUS, DISTANCE, HAS_GOAL, shaped=False)
    assert reward.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("shaped", [True, False])
def test_no_reward_without_a_reference_path(shaped):
    no_goal = np.array([False, True, False, True, True, True])
    distance = np.where(no_goal, DISTANCE, NAN)
    previous = np.where(no_goal, PREVIOUS, NAN)
    reward = step_reward(STOP, MOVE, previous, distance, no_goal, shaped=shaped)
    expected = step_reward(STOP, MOVE, PREVIOUS, DISTANCE, HAS_GOAL, shaped=shaped)
    assert reward.tolist() == np.where(no_goal, expected, 0.0).tolist()
    assert not np.isnan(reward).any()
