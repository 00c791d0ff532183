"""The R2R Gymnasium environments on the real R2R graphs with random panorama features."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from envs.constants import ANGLE_FEATURE_SIZE, NUM_VIEWS
from envs.episodes import load_episodes
from envs.errors import DataError
from envs.evaluate import evaluate
from envs.features.angles import angle_feature, view_angle_features
from envs.graph import NavGraphs
from envs.gym_env import R2REnvConfig, R2RNavEnv, R2RVectorEnv
from envs.metrics import METRIC_NAMES
from envs.simulator import discrete_view_angles

FEATURE_DIM = 16
SPLIT = "val_unseen"
#: val_unseen's first instruction: c9e8 -> f33c -> ae91 -> 6776, 10.858 m along the graph.
HAND_EPISODE = "4332_0"
START, SECOND, THIRD, GOAL = (
    "c9e8dc09263e4d0da77d16de0ecddd39",
    "f33c718aaf2c41469389a87944442c62",
    "ae91518ed77047b3bdeeca864cd04029",
    "6776097c17ed4b93aee61704eb32f06c",
)


def write_features(
    path: Path, data_dir: Path, scans: list[str], dim: int = FEATURE_DIM, skip: str | None = None
) -> Path:
    """Random float32 [36, dim] features (HAMT layout) for every viewpoint of ``scans``."""
    graphs = NavGraphs(data_dir)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        for scan in scans:
            for viewpoint in graphs[scan].viewpoint_ids:
                if viewpoint != skip:
                    features = rng.standard_normal((NUM_VIEWS, dim), dtype=np.float32)
                    file.create_dataset(f"{scan}_{viewpoint}", data=features)
    return path


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory, real_data_dir) -> Path:
    scans = sorted({e.scan for e in load_episodes(real_data_dir, SPLIT)})
    return write_features(tmp_path_factory.mktemp("features") / "f.h5", real_data_dir, scans)


@pytest.fixture(scope="module")
def config(real_data_dir, feature_file) -> R2REnvConfig:
    return R2REnvConfig(data_dir=real_data_dir, features=feature_file, split=SPLIT)


@pytest.fixture(scope="module")
def env(config) -> R2RNavEnv:
    environment = R2RNavEnv(config, episode_order="sequential")
    yield environment
    environment.close()


def action_to(env: R2RNavEnv, viewpoint: str) -> int:
    """The action that moves the single env's agent to the neighbour ``viewpoint``."""
    core = env.core
    ids = core.table.ids[core.sim.location[0]]
    names = [core.world.viewpoint_ids[g] if g >= 0 else None for g in ids]
    return names.index(viewpoint) + 1


def random_valid_action(observation: dict, rng: np.random.Generator) -> np.ndarray:
    mask = observation["action_mask"]
    return np.argmax(rng.random(mask.shape) * mask, axis=-1)


def test_import_envs_registers_without_torch_or_h5py():
    code = (
        "import sys, gymnasium, envs; "
        "assert 'clipvil/R2R-v0' in gymnasium.registry; "
        "assert 'torch' not in sys.modules and 'h5py' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    spec = gym.spec(envs.R2R_ENV_ID)
    assert spec.entry_point == "envs.gym_env:R2RNavEnv"
    assert spec.vector_entry_point == "envs.gym_env:R2RVectorEnv"


def test_check_env(config):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # features are unbounded
        warnings.filterwarnings("ignore", message=".*render modes.*")
        single = R2RNavEnv(config)
        check_env(single)
        single.close()
        made = gym.make(envs.R2R_ENV_ID, config=config)
        check_env(made.unwrapped)
        made.close()


def test_spaces_and_observation_shapes(env):
    candidates = env.core.table.max_candidates
    assert candidates == 12  # the most neighbours any val_unseen viewpoint sees
    assert env.action_space == gym.spaces.Discrete(candidates + 1)
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert observation["instruction"].shape == (80,)
    assert observation["view_features"].shape == (NUM_VIEWS, FEATURE_DIM)
    assert observation["view_angle_features"].shape == (NUM_VIEWS, ANGLE_FEATURE_SIZE)
    assert observation["candidate_features"].shape == (candidates, FEATURE_DIM + ANGLE_FEATURE_SIZE)
    assert observation["action_mask"].dtype == np.int8
    words = env.core.tokenizer.decode(observation["instruction"])
    assert words == "walk to the other end of the lobby and wait near the exit"
    assert observation["instruction_length"] == len(words.split()) + 1  # + <EOS>
    assert info["instr_id"] == HAND_EPISODE and info["viewpoint"] == START


def test_features_match_the_file_and_angle_features(env, feature_file):
    rng = np.random.default_rng(3)
    observation, info = env.reset(options={"episode_index": 40})
    with h5py.File(feature_file, "r") as file:
        for _ in range(4):
            core = env.core
            here = core.sim.location[0]
            stored = file[f"{core.world.scan_of(here)}_{info['viewpoint']}"][()]  # [36, D]
            np.testing.assert_array_equal(observation["view_features"], stored)
            view = int(observation["view_index"])
            np.testing.assert_array_equal(
                observation["view_angle_features"], view_angle_features(view)
            )
            heading, _ = discrete_view_angles(np.array(view))
            assert observation["heading"][0] == np.float32(heading)
            count = int(core.table.count[here])
            cand = observation["candidate_features"]  # [C, D + 128]
            for c in range(count):
                np.testing.assert_array_equal(
                    cand[c, :FEATURE_DIM], stored[core.table.view[here, c]]
                )
                expected = angle_feature(
                    core.table.heading[here, c] - heading, core.table.elevation[here, c]
                )
                np.testing.assert_allclose(cand[c, FEATURE_DIM:], expected, atol=1e-6)
            assert not cand[count:].any()  # padding rows are zero
            action = int(rng.integers(1, count + 1))
            observation, _, _, _, info = env.step(action)
            assert info["viewpoint"] == core.world.viewpoint_ids[core.table.ids[here, action - 1]]


def test_action_mask_lists_the_neighbours(env, real_data_dir):
    graphs = NavGraphs(real_data_dir)
    for index in (0, 500, 1500):
        observation, info = env.reset(options={"episode_index": index})
        graph = graphs[env.core.episodes[index].scan]
        mask = observation["action_mask"]
        assert mask[0] == 1  # STOP
        count = int(mask[1:].sum())
        assert mask[1 : count + 1].all() and not mask[count + 1 :].any()  # candidates first
        reached = set()
        for action in range(1, count + 1):
            env.reset(options={"episode_index": index})
            reached.add(env.step(action)[4]["viewpoint"])
        assert reached == set(graph.neighbours(info["viewpoint"]))


def test_forbidden_action_wastes_a_step_and_truncates(config):
    env = R2RNavEnv(config, max_actions=3)
    observation, info = env.reset(options={"instr_id": HAND_EPISODE})
    forbidden = int(np.flatnonzero(observation["action_mask"] == 0)[0])
    for step in range(3):
        observation, reward, terminated, truncated, info = env.step(forbidden)
        assert info["invalid_action"] and info["viewpoint"] == START and reward == 0.0
        assert not terminated and truncated == (step == 2)
    assert info["trajectory"] == [[START, pytest.approx(info["trajectory"][0][1]), 0.0]]
    assert info["metrics"]["sr"] == 0.0 and info["metrics"]["ne"] == pytest.approx(10.858, abs=1e-3)
    # A finished episode is frozen: STOP only, nothing moves, reward 0.
    assert observation["action_mask"].tolist() == [1] + [0] * env.core.num_candidates
    _, reward, terminated, truncated, info = env.step(1)
    assert reward == 0.0 and truncated and not terminated and info["viewpoint"] == START
    env.close()


def test_shaped_reward_on_a_hand_checked_episode(env):
    """Distances to the goal: START 10.858, SECOND 6.221, THIRD 4.032 (m)."""
    env.reset(options={"instr_id": HAND_EPISODE})
    rewards, distances = [], []
    for viewpoint in (SECOND, START, SECOND, THIRD):
        _, reward, terminated, _, info = env.step(action_to(env, viewpoint))
        rewards.append(reward)
        distances.append(round(info["distance_to_goal"], 3))
        assert not terminated
    _, reward, terminated, _, info = env.step(0)  # STOP 4.032 m away: not within 3 m
    assert rewards + [reward] == [1.0, -1.0, 1.0, 1.0, -2.0]
    assert distances == [6.221, 10.858, 6.221, 4.032]
    assert terminated and info["metrics"]["sr"] == 0.0 and info["metrics"]["osr"] == 0.0
    env.reset(options={"instr_id": HAND_EPISODE})
    rewards = [env.step(action_to(env, vp))[1] for vp in (SECOND, THIRD, GOAL)]
    assert rewards + [env.step(0)[1]] == [1.0, 1.0, 1.0, 2.0]


def test_unshaped_reward_is_one_for_success_only(config):
    env = R2RNavEnv(config, shaped_reward=False)
    env.reset(options={"instr_id": HAND_EPISODE})
    rewards = [env.step(action_to(env, vp))[1] for vp in (SECOND, THIRD)]
    assert rewards + [env.step(0)[1]] == [0.0, 0.0, 0.0]
    env.reset(options={"instr_id": HAND_EPISODE})
    rewards = [env.step(action_to(env, vp))[1] for vp in (SECOND, THIRD, GOAL)]
    assert rewards + [env.step(0)[1]] == [0.0, 0.0, 0.0, 1.0]
    env.close()


def test_trajectories_start_at_the_start_and_follow_edges(env, real_data_dir):
    graphs = NavGraphs(real_data_dir)
    rng = np.random.default_rng(1)
    observation, info = env.reset(seed=5)
    for _ in range(6):
        episode = env.core.episodes[info["episode_index"]]
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(
                int(random_valid_action(observation, rng))
            )
            done = terminated or truncated
        trajectory = info["trajectory"]
        assert trajectory[0][0] == episode.start
        assert trajectory[-1][0] == info["viewpoint"]
        graph = graphs[episode.scan]
        for (a, ha, ea), (b, hb, eb) in zip(trajectory[:-1], trajectory[1:], strict=True):
            assert a == b or graph.is_edge(a, b)
            assert (a == b) != (ha == hb and ea == eb)  # one sub-action: turn, tilt or move
        observation, info = env.reset()


def test_same_seed_same_rollout(config):
    def rollout(env, seed):
        rng = np.random.default_rng(seed)
        observation, info = env.reset(seed=seed)
        record = [np.asarray(info["instr_id"]).tolist()]
        for _ in range(40):
            action = random_valid_action(observation, rng)
            observation, reward, terminated, truncated, info = env.step(action)
            record.append((np.asarray(action).tolist(), np.asarray(reward).tolist()))
            record.append(np.asarray(info["viewpoint"]).tolist())
            record.append(observation["candidate_features"].sum().round(4).tolist())
            if np.all(np.asarray(terminated) | np.asarray(truncated)) and env is single:
                observation, info = env.reset()
                record.append(info["instr_id"])
        return record

    single = R2RNavEnv(config)
    assert rollout(single, 11) == rollout(single, 11)
    assert rollout(single, 11)[0] != rollout(single, 12)[0]
    vector = R2RVectorEnv(4, config)
    assert rollout(vector, 11) == rollout(vector, 11)
    single.close()
    vector.close()


def test_teacher_reaches_every_goal_and_info_metrics_match_evaluate(config, real_data_dir):
    """Batch-synchronous rounds over all of val_unseen, as an EnvDrop trainer runs them."""
    env = R2RVectorEnv(
        64, config, autoreset_mode=AutoresetMode.DISABLED, episode_order="sequential"
    )
    assert env.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    trajectories, metrics = {}, {}
    num_episodes = len(env.core.episodes)
    for _ in range(-(-num_episodes // env.num_envs)):
        observation, info = env.reset()
        done = np.zeros(env.num_envs, dtype=bool)
        while not done.all():
            action = info["teacher_action"]
            assert observation["action_mask"][np.arange(env.num_envs), action].all()
            observation, reward, terminated, truncated, info = env.step(action)
            assert (reward[done] == 0.0).all()  # finished agents are frozen
            assert (terminated[done] | truncated[done]).all()
            for agent in np.flatnonzero(info.get("_metrics", [])):
                if info["epoch"][agent] == 0:
                    trajectories[info["instr_id"][agent]] = info["trajectory"][agent]
                    metrics[info["instr_id"][agent]] = {
                        name: info["metrics"][name][agent] for name in METRIC_NAMES
                    }
            done = terminated | truncated
        assert not truncated.any()
    env.close()
    episodes = load_episodes(real_data_dir, SPLIT)
    assert sorted(trajectories) == sorted(e.instr_id for e in episodes)
    predictions = {key: [tuple(step) for step in value] for key, value in trajectories.items()}
    result = evaluate(NavGraphs(real_data_dir), episodes, predictions, "teacher")
    assert result.summary["sr"] == 1.0 and result.summary["spl"] == pytest.approx(1.0)
    for row in result.per_instruction:
        for name in METRIC_NAMES:
            assert metrics[row["instr_id"]][name] == pytest.approx(row[name], abs=1e-12)


def test_make_vec_with_the_vector_entry_point(config):
    env = gym.make_vec(
        envs.R2R_ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", config=config
    )
    assert isinstance(env.unwrapped, R2RVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.action_space == gym.spaces.MultiDiscrete([13, 13, 13])
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert observation["candidate_features"].shape == (3, 12, FEATURE_DIM + ANGLE_FEATURE_SIZE)
    # NEXT_STEP: agent 0 stops; on the next step it starts a new episode, its action ignored.
    first = info["instr_id"].copy()
    _, reward, terminated, _, info = env.step(np.array([0, 1, 1]))
    assert terminated.tolist() == [True, False, False] and info["_metrics"].tolist()[0]
    observation, reward, terminated, _, info = env.step(np.array([1, 0, 0]))
    assert reward[0] == 0.0 and not terminated[0] and info["instr_id"][0] != first[0]
    assert info["viewpoint"][0] == env.unwrapped.core.episodes[info["episode_index"][0]].start
    assert terminated[1:].all()
    env.close()


def test_reset_mask_restarts_only_some_agents(config, real_data_dir):
    ids = [e.instr_id for e in load_episodes(real_data_dir, SPLIT)[:4]]
    env = R2RVectorEnv(3, config, autoreset_mode="Disabled", episode_order="sequential")
    _, info = env.reset(seed=0)
    assert info["instr_id"].tolist() == ids[:3]
    env.step(np.array([0, 0, 1]))
    _, info = env.reset(options={"reset_mask": np.array([True, False, False])})
    assert info["instr_id"].tolist() == [ids[3], ids[1], ids[2]]
    assert env.core.done.tolist() == [False, True, False]
    env.close()


def test_episodes_without_a_goal_still_give_trajectories(config, real_data_dir):
    episodes = load_episodes(real_data_dir, SPLIT)[:3]
    no_goal = [dataclasses.replace(e, path=e.path[:1], distance=None) for e in episodes]
    env = R2RNavEnv(config, split=no_goal, preload_features=False)
    observation, info = env.reset(seed=0)
    assert info["teacher_action"] == -1
    _, reward, terminated, _, info = env.step(1)
    _, reward, terminated, _, info = env.step(0)
    assert terminated and reward == 0.0 and "metrics" not in info
    assert info["trajectory"][0][0] == no_goal[info["episode_index"]].start
    env.close()


def test_missing_viewpoint_is_a_one_line_data_error(tmp_path, real_data_dir):
    episodes = load_episodes(real_data_dir, SPLIT)
    scan = episodes[0].scan
    path = write_features(tmp_path / "missing.h5", real_data_dir, [scan], skip=episodes[0].goal)
    mine = [e for e in episodes if e.scan == scan]
    with pytest.raises(DataError) as error:
        R2RNavEnv(data_dir=real_data_dir, features=path, split=mine)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert f"{scan}_{episodes[0].goal}" in message


def test_wrong_feature_size_is_a_one_line_data_error(tmp_path, real_data_dir, feature_file):
    episodes = [e for e in load_episodes(real_data_dir, SPLIT) if e.scan == "8194nk5LbLH"]
    with pytest.raises(DataError, match=f"^{feature_file}: .*16.*32"):
        R2RNavEnv(data_dir=real_data_dir, features=feature_file, split=episodes, feature_dim=32)
    path = write_features(tmp_path / "narrow.h5", real_data_dir, ["8194nk5LbLH"])
    with h5py.File(path, "a") as file:
        name = f"8194nk5LbLH_{episodes[0].goal}"
        del file[name]
        file.create_dataset(name, data=np.zeros((NUM_VIEWS, FEATURE_DIM - 4), np.float32))
    with pytest.raises(DataError) as error:
        R2RNavEnv(data_dir=real_data_dir, features=path, split=episodes)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    assert name in str(error.value)
