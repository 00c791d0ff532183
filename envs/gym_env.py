"""Gymnasium environments for Room-to-Room: :class:`R2RNavEnv` and its batched form.

Both are thin layers over :class:`envs.nav.batch.NavBatch` (the single env is a batch of
one), registered as ``clipvil/R2R-v0`` in :mod:`envs`::

    import gymnasium as gym
    import envs  # registers clipvil/R2R-v0

    env = gym.make("clipvil/R2R-v0", data_dir=root, features="clip.h5", split="val_unseen")
    envs_ = gym.make_vec("clipvil/R2R-v0", num_envs=64, vectorization_mode="vector_entry_point",
                         data_dir=root, features="clip.h5", split="train")

Keyword arguments are the fields of :class:`R2REnvConfig`; a ``config=`` can be given
instead (keywords then override its fields); unknown keywords raise ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.constants import ANGLE_FEATURE_SIZE, NUM_VIEWS
from envs.metrics import METRIC_NAMES
from envs.nav.batch import NO_TEACHER_ACTION, STOP_ACTION, NavBatch
from envs.nav.inputs import R2REnvConfig

__all__ = [
    "NO_TEACHER_ACTION",
    "STOP_ACTION",
    "R2REnvConfig",
    "R2RNavEnv",
    "R2RVectorEnv",
    "observation_space",
]

#: Autoreset modes the vector env supports (``SAME_STEP`` is not offered).
SUPPORTED_AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED)


def _config(config: R2REnvConfig | None, overrides: dict[str, Any]) -> R2REnvConfig:
    """``config`` with ``overrides`` applied, or a config made of them."""
    if config is None:
        return R2REnvConfig(**overrides)
    return dataclasses.replace(config, **overrides) if overrides else config


def observation_space(core: NavBatch) -> spaces.Dict:
    """The observation space of one agent (see :class:`R2RNavEnv`)."""
    length, dim, cands = core.config.max_instruction_length, core.feature_dim, core.num_candidates
    features = {"low": -np.inf, "high": np.inf, "dtype": np.float32}
    return spaces.Dict(
        {
            "instruction": spaces.Box(0, core.vocab_size - 1, (length,), np.int64),
            "instruction_length": spaces.Discrete(length + 1),
            "view_features": spaces.Box(shape=(NUM_VIEWS, dim), **features),
            "view_angle_features": spaces.Box(
                -1.0, 1.0, (NUM_VIEWS, ANGLE_FEATURE_SIZE), np.float32
            ),
            "candidate_features": spaces.Box(shape=(cands, dim + ANGLE_FEATURE_SIZE), **features),
            "action_mask": spaces.MultiBinary(cands + 1),
            "heading": spaces.Box(0.0, 2.0 * math.pi, (1,), np.float32),
            "elevation": spaces.Box(-math.pi / 2.0, math.pi / 2.0, (1,), np.float32),
            "view_index": spaces.Discrete(NUM_VIEWS),
        }
    )


class R2RNavEnv(gym.Env):
    """Follow a Room-to-Room instruction through a Matterport house.

    ## Description
    The agent stands at a viewpoint of a Matterport3D navigation graph (Anderson et al.
    2018, "Vision-and-Language Navigation") and reads an English instruction. Each action
    moves it to one of the neighbouring viewpoints it can see (R2R-EnvDrop's candidates,
    Tan et al. 2019) or stops. Movement follows MatterSim's discretized rules
    (:mod:`envs.simulator`): the turns and tilts to face a candidate happen inside one step.

    ## Action Space
    ``Discrete(C + 1)``: 0 = STOP; ``i >= 1`` = move to candidate ``i - 1``. ``C`` is the
    most candidates any viewpoint of the loaded scans has. An action that
    ``action_mask`` forbids moves nothing, counts as an action, gets reward 0 and sets
    ``info["invalid_action"]``.

    ## Observation Space
    ``Dict`` with ``L = max_instruction_length``, ``D`` the feature size:

    - ``instruction`` int64 ``[L]``: token ids, 0-padded; ``instruction_length``: Discrete;
    - ``view_features`` float32 ``[36, D]``: the panorama features of the viewpoint;
    - ``view_angle_features`` float32 ``[36, 128]``: EnvDrop's angle feature of each view,
      heading relative to the agent's heading, absolute elevation;
    - ``candidate_features`` float32 ``[C, D + 128]``: the feature of the view that shows
      each candidate, then the angle feature of its direction (relative heading, absolute
      elevation); padding rows are 0;
    - ``action_mask`` int8 ``[C + 1]``: 1 for STOP and each real candidate;
    - ``heading`` float32 ``[1]`` in ``[0, 2 pi)``, ``elevation`` float32 ``[1]``;
      ``view_index``: Discrete(36), the discretized view the agent faces.

    ## Starting State
    The episode's start viewpoint and heading, elevation 0, snapped to the 36 views as
    MatterSim does. Episodes come in shuffled epochs drawn with ``np_random``
    (``episode_order="random"``) or in file order (``"sequential"``); seeding restarts
    the order. ``reset(options={"instr_id": ...})`` or ``{"episode_index": i}`` picks one.

    ## Rewards
    EnvDrop's shaped reward (``shaped_reward=True``) or 1 for a successful STOP; always 0
    without a reference path. Defined and documented in :mod:`envs.nav.rewards`.

    ## Episode End
    Terminated on STOP; truncated after ``max_actions`` actions (STOP included) without one.
    Stepping a finished episode changes nothing and returns reward 0.

    ## Information
    Every step: ``instr_id``, ``episode_index``, ``epoch``, ``viewpoint``,
    ``distance_to_goal`` (metres), ``teacher_action`` (the action on a shortest path to the
    goal, STOP there; -1 without a reference path) and ``invalid_action``. At the end also
    ``trajectory`` ``[[viewpoint, heading, elevation], ...]`` (every intermediate state of
    the turns and moves, start state first: R2R's submission format) and ``metrics``
    (:func:`envs.metrics.trajectory_metrics`: tl, ne, sr, osr, spl, ndtw, sdtw, cls, steps;
    absent without a reference path).

    ## Arguments
    The fields of :class:`envs.nav.inputs.R2REnvConfig` as keywords, or ``config=``.

    ## Version History
    - v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: R2REnvConfig | None = None, **overrides: Any) -> None:
        self.config = _config(config, overrides)
        self.core = NavBatch(self.config, batch_size=1)
        self.observation_space = observation_space(self.core)
        self.action_space = spaces.Discrete(self.core.num_candidates + 1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        core = self.core
        if seed is not None or not core.order.started:
            core.order.restart(self.np_random)
        options = options or {}
        if "instr_id" in options or "episode_index" in options:
            episodes, epochs = np.array([_pick_episode(core, options)]), np.zeros(1, np.int64)
        else:
            episodes, epochs = core.order.take(1, self.np_random)
        core.start(np.zeros(1, dtype=np.int64), episodes, epochs)
        return self._observation(), self._info(np.zeros(1, dtype=bool), np.zeros(1, dtype=bool))

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        reward, finished, invalid = self.core.step(np.array([action], dtype=np.int64))
        info = self._info(finished, invalid)
        core = self.core
        terminated, truncated = bool(core.terminated[0]), bool(core.truncated[0])
        return self._observation(), float(reward[0]), terminated, truncated, info

    def _observation(self) -> dict[str, Any]:
        observation = {key: value[0] for key, value in self.core.observe().items()}
        for key in ("instruction_length", "view_index"):
            observation[key] = np.int64(observation[key])
        return observation

    def _info(self, finished: np.ndarray, invalid: np.ndarray) -> dict[str, Any]:
        core = self.core
        info: dict[str, Any] = {key: _scalar(value[0]) for key, value in core.step_info().items()}
        info["invalid_action"] = bool(invalid[0])
        if finished[0]:
            info["trajectory"] = core.trajectory(0)
            metrics = core.metrics(0)
            if metrics is not None:
                info["metrics"] = metrics
        return info

    def close(self) -> None:
        self.core.close()


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (other values as they are)."""
    return value.item() if isinstance(value, np.generic) else value


def _pick_episode(core: NavBatch, options: dict[str, Any]) -> int:
    """The episode index that ``options`` names by ``instr_id`` or ``episode_index``."""
    if "instr_id" in options:
        matches = np.flatnonzero(core.instr_ids == options["instr_id"])
        if matches.size == 0:
            raise ValueError(f"no loaded episode has instr_id {options['instr_id']!r}")
        return int(matches[0])
    index = int(options["episode_index"])
    if not 0 <= index < len(core.episodes):
        raise ValueError(f"episode_index {index} outside 0..{len(core.episodes) - 1}")
    return index


class R2RVectorEnv(VectorEnv):
    """``num_envs`` R2R agents stepped together with numpy: the native vector form of R2RNavEnv.

    ## Description
    The same task, observations, actions and rewards as :class:`R2RNavEnv`, for a batch of
    agents in one :class:`envs.nav.batch.NavBatch` (no sub-environment objects). Per-agent
    Python runs only when an agent starts or ends an episode.

    ## Action Space
    ``MultiDiscrete([C + 1] * num_envs)``; ``single_action_space`` is ``Discrete(C + 1)``.

    ## Observation Space
    :class:`R2RNavEnv`'s ``Dict`` with a leading ``[num_envs]`` axis on every entry.

    ## Starting State
    ``reset()`` starts a new episode for every agent (``options={"reset_mask": m}``: only
    the agents where ``m`` [num_envs] bool is True; ``options={"instr_ids": [...]}``: those
    episodes, one per agent reset). Episodes are dealt from one stream: shuffled epochs
    (``"random"``) or file order (``"sequential"``); ``info["epoch"]`` says which pass over
    the split an agent's episode belongs to, so an evaluation keeps the epoch-0 results.

    ## Rewards
    As :class:`R2RNavEnv`; an agent whose episode has ended gets 0.

    ## Episode End
    Per agent, as :class:`R2RNavEnv`. What follows depends on ``autoreset_mode``
    (``metadata["autoreset_mode"]``):

    - ``AutoresetMode.NEXT_STEP`` (default, Gymnasium's convention): the step after an agent
      ends, its action is ignored and it starts the next episode of the stream (reward 0,
      ``terminated`` and ``truncated`` False).
    - ``AutoresetMode.DISABLED``: batch-synchronous, as EnvDrop trains. An agent that ended
      stays frozen: its mask offers only STOP, its actions are ignored, its reward is 0 and
      its ``terminated`` / ``truncated`` flags stay True. A trainer does::

          obs, info = env.reset()
          while True:
              logits[obs["action_mask"] == 0] = -inf  # finished agents: STOP only
              obs, reward, terminated, truncated, info = env.step(actions)
              if (terminated | truncated).all():
                  break                               # every agent has ended
          # next batch: env.reset()

    ## Information
    ``instr_id``, ``episode_index``, ``epoch``, ``viewpoint``, ``distance_to_goal``,
    ``teacher_action``, ``invalid_action``: arrays ``[num_envs]`` every step. For agents that
    ended this step: ``trajectory`` (object array, masked by ``_trajectory``) and
    ``metrics`` (``{name: float64 [num_envs]}``, NaN elsewhere, masked by ``_metrics``).

    ## Arguments
    ``num_envs``, ``autoreset_mode`` and the fields of :class:`R2REnvConfig` (or
    ``config=``), e.g. ``gym.make_vec("clipvil/R2R-v0", num_envs=64,
    vectorization_mode="vector_entry_point", data_dir=..., features=...)``.

    ## Version History
    - v0: initial version.
    """

    def __init__(
        self,
        num_envs: int,
        config: R2REnvConfig | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **overrides: Any,
    ) -> None:
        autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in SUPPORTED_AUTORESET_MODES:
            raise ValueError(f"autoreset_mode must be one of {SUPPORTED_AUTORESET_MODES}")
        self.config = _config(config, overrides)
        self.core = NavBatch(self.config, batch_size=num_envs)
        self.num_envs = num_envs
        self.metadata = {"render_modes": [], "autoreset_mode": autoreset_mode}
        self.single_observation_space = observation_space(self.core)
        self.single_action_space = spaces.Discrete(self.core.num_candidates + 1)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.metadata["autoreset_mode"]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        core = self.core
        if seed is not None or not core.order.started:
            core.order.restart(self.np_random)
        options = options or {}
        mask = np.ones(self.num_envs, dtype=bool)
        if "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool).reshape(self.num_envs)
            if not core.started and not mask.all():
                raise ValueError("the first reset must reset every agent")
        agents = np.flatnonzero(mask)
        if "instr_ids" in options:
            episodes = np.array(
                [_pick_episode(core, {"instr_id": i}) for i in options["instr_ids"]]
            )
            if episodes.shape != agents.shape:
                raise ValueError(f"instr_ids must name {agents.size} episodes")
            epochs = np.zeros(agents.size, dtype=np.int64)
        else:
            episodes, epochs = core.order.take(agents.size, self.np_random)
        core.start(agents, episodes, epochs)
        invalid = np.zeros(self.num_envs, dtype=bool)
        return core.observe(), self._info(np.zeros(self.num_envs, dtype=bool), invalid)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        core = self.core
        autoreset = core.done if self.autoreset_mode == AutoresetMode.NEXT_STEP else None
        reward, finished, invalid = core.step(actions)
        if autoreset is not None and autoreset.any():  # never an agent that finished just now
            agents = np.flatnonzero(autoreset)
            core.start(agents, *core.order.take(agents.size, self.np_random))
        info = self._info(finished, invalid)
        terminated, truncated = core.terminated.copy(), core.truncated.copy()
        return core.observe(), reward, terminated, truncated, info

    def _info(self, finished: np.ndarray, invalid: np.ndarray) -> dict[str, Any]:
        core = self.core
        info: dict[str, Any] = core.step_info()
        info["invalid_action"] = invalid
        if finished.any():
            trajectories = np.full(self.num_envs, None, dtype=object)
            metrics = {name: np.full(self.num_envs, np.nan) for name in (*METRIC_NAMES, "steps")}
            has_metrics = np.zeros(self.num_envs, dtype=bool)
            for agent in np.flatnonzero(finished):
                trajectories[agent] = core.trajectory(agent)
                values = core.metrics(agent)
                if values is not None:
                    has_metrics[agent] = True
                    for name, value in values.items():
                        metrics[name][agent] = value
            info.update(trajectory=trajectories, _trajectory=finished.copy())
            info.update(metrics=metrics, _metrics=has_metrics)
        return info

    def close_extras(self, **kwargs: Any) -> None:
        self.core.close()
