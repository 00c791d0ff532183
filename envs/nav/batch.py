"""B agents following R2R instructions: the one implementation behind both Gymnasium envs.

:class:`NavBatch` holds a :class:`envs.simulator.BatchSimulator` over the scans of the
loaded episodes, EnvDrop's candidate table, the panorama features, and per-agent episode
state as arrays ``[B]``. Every step moves all agents at once with numpy; per-agent Python
runs only when an agent starts an episode or finishes one (its metrics and trajectory).

An agent that has finished (STOP, or ``max_actions`` actions) is frozen until it starts a
new episode: its actions are ignored, it gets reward 0, its action mask offers only STOP,
and its ``terminated`` / ``truncated`` flags stay as they were when it finished. The reward
of a step is :func:`envs.nav.rewards.step_reward`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from envs.constants import NUM_ELEVATION_LEVELS, NUM_VIEWS, VIEWS_PER_ELEVATION
from envs.features.angles import angle_feature, view_angle_features
from envs.graph import NavGraphs
from envs.metrics import trajectory_metrics
from envs.nav.candidates import build_candidate_table, move_to_candidates
from envs.nav.inputs import (
    EpisodeOrder,
    PanoramaFeatures,
    R2REnvConfig,
    encode_instructions,
    resolve_episodes,
)
from envs.nav.rewards import step_reward
from envs.simulator import BatchSimulator, SimWorld
from envs.tokenizer import Tokenizer

#: Action 0 is STOP; action ``i >= 1`` moves to candidate ``i - 1``.
STOP_ACTION = 0
#: Teacher action of an episode without a reference path (the R2R test split).
NO_TEACHER_ACTION = -1
#: Simulator actions one move can take: tilt to the level, turn to the view, step.
MAX_SUBACTIONS_PER_MOVE = (NUM_ELEVATION_LEVELS - 1) + (VIEWS_PER_ELEVATION - 1) + 1


@functools.lru_cache(maxsize=1)
def _all_view_angle_features() -> np.ndarray:
    """``[36, 36, 128]``: row ``v`` is :func:`view_angle_features` of base view ``v``."""
    return np.stack([view_angle_features(v) for v in range(NUM_VIEWS)])


class NavBatch:
    """A batch of ``batch_size`` agents, each in its own R2R episode."""

    def __init__(self, config: R2REnvConfig, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.config = config
        self.batch_size = batch_size
        self.episodes = resolve_episodes(config)
        graphs = NavGraphs(config.data_dir)
        scans = list(dict.fromkeys(episode.scan for episode in self.episodes))
        self.world = world = SimWorld.from_data(graphs, scans)
        self.table = build_candidate_table(world)
        self.sim = BatchSimulator(world, batch_size)
        tokenizer = config.tokenizer
        if tokenizer is None:
            tokenizer = Tokenizer.build_from_episodes(self.episodes)
        self.tokenizer = tokenizer
        self.instructions, self.instruction_lengths, self.vocab_size = encode_instructions(
            self.episodes, tokenizer, config.max_instruction_length
        )
        self._init_episode_arrays()
        self._init_distances()
        self.features = PanoramaFeatures(
            config.features, world, config.feature_dim, config.preload_features
        )
        self.order = EpisodeOrder(len(self.episodes), config.episode_order)
        self._init_state()

    # ------------------------------------------------------------------ set-up
    @property
    def num_candidates(self) -> int:
        """``C``: the most candidates any viewpoint of the loaded scans has."""
        return self.table.max_candidates

    @property
    def feature_dim(self) -> int:
        return self.features.feature_dim

    def _init_episode_arrays(self) -> None:
        world = self.world
        self.instr_ids = np.array([e.instr_id for e in self.episodes], dtype=object)  # [N]
        self.start_ids = world.global_ids(
            [e.scan for e in self.episodes], [e.start for e in self.episodes]
        )  # [N]
        self.goal_ids = np.array(
            [world.global_id(e.scan, e.goal) if len(e.path) > 1 else -1 for e in self.episodes]
        )  # [N], -1: no reference path
        self.start_headings = np.array([e.heading for e in self.episodes])  # [N]
        self.viewpoint_names = np.array(world.viewpoint_ids, dtype=object)  # [G]

    def _init_distances(self) -> None:
        """Shortest-path distances ``[S, n, n]`` per scan and candidate edge lengths ``[G, C]``."""
        world = self.world
        largest = max(len(graph) for graph in world.graphs.values())
        self._scan_distances = np.full((len(world.scans), largest, largest), np.inf)
        for s, scan in enumerate(world.scans):
            n = len(world.graphs[scan])
            self._scan_distances[s, :n, :n] = world.graphs[scan].distances
        positions = np.concatenate([world.graphs[s].positions for s in world.scans])  # [G, 3]
        ids = self.table.ids  # [G, C]
        steps = positions[np.maximum(ids, 0)] - positions[:, None]  # [G, C, 3]
        self._edge_lengths = np.where(ids >= 0, np.linalg.norm(steps, axis=-1), np.inf)  # [G, C]

    def _init_state(self) -> None:
        batch = self.batch_size
        self.episode_index = np.zeros(batch, dtype=np.int64)
        self.epoch = np.zeros(batch, dtype=np.int64)
        self.goal = np.full(batch, -1, dtype=np.int64)
        self.actions_taken = np.zeros(batch, dtype=np.int64)
        self.terminated = np.zeros(batch, dtype=bool)
        self.truncated = np.zeros(batch, dtype=bool)
        self.distance = np.full(batch, np.nan)
        states = 1 + self.config.max_actions * MAX_SUBACTIONS_PER_MOVE
        self._path_location = np.zeros((batch, states), dtype=np.int64)  # [B, T]
        self._path_heading = np.zeros((batch, states))  # [B, T]
        self._path_elevation = np.zeros((batch, states))  # [B, T]
        self._path_length = np.zeros(batch, dtype=np.int64)  # [B]
        self.started = False

    def close(self) -> None:
        self.features.close()

    # ----------------------------------------------------------------- episodes
    @property
    def done(self) -> np.ndarray:
        """[B] bool: the agent's episode has ended."""
        return self.terminated | self.truncated

    def start(self, agents: np.ndarray, episodes: np.ndarray, epochs: np.ndarray) -> None:
        """Start episodes ``episodes`` [n] (from ``epochs`` [n]) for the agents ``agents`` [n]."""
        agents = np.asarray(agents, dtype=np.int64)
        episodes = np.asarray(episodes, dtype=np.int64)
        sim = self.sim
        if not self.started:  # the other agents start somewhere valid until they get episodes
            location = np.full(self.batch_size, self.start_ids[0])
            heading = np.zeros(self.batch_size)
            elevation = np.zeros(self.batch_size)
            self.started = True
        else:  # the others keep their exact state (their angles snap back to the same view)
            location, heading, elevation = sim.location.copy(), sim.heading, sim.elevation
        location[agents] = self.start_ids[episodes]
        heading = np.array(heading, dtype=np.float64)
        heading[agents] = self.start_headings[episodes]
        elevation = np.array(elevation, dtype=np.float64)
        elevation[agents] = 0.0
        sim.new_episode_ids(location, heading, elevation)
        self.episode_index[agents] = episodes
        self.epoch[agents] = epochs
        self.goal[agents] = self.goal_ids[episodes]
        self.actions_taken[agents] = 0
        self.terminated[agents] = False
        self.truncated[agents] = False
        self.distance = self._goal_distance(sim.location)
        self._path_length[agents] = 0
        started = np.zeros(self.batch_size, dtype=bool)
        started[agents] = True
        self._record(sim.location[None], sim.heading[None], sim.elevation[None], started[None])

    def _record(self, location, heading, elevation, acted) -> None:
        """Append the states ``[T, B]`` where ``acted`` to each agent's trajectory."""
        for t in range(acted.shape[0]):
            agents = np.flatnonzero(acted[t])
            slot = self._path_length[agents]
            self._path_location[agents, slot] = location[t, agents]
            self._path_heading[agents, slot] = heading[t, agents]
            self._path_elevation[agents, slot] = elevation[t, agents]
            self._path_length[agents] += 1

    def _pair_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Shortest-path distances between global ids ``a`` and ``b`` (same scan, broadcast)."""
        world = self.world
        safe_a, safe_b = np.maximum(a, 0), np.maximum(b, 0)
        scan = world.scan_index[safe_a]
        return self._scan_distances[scan, world.local_index[safe_a], world.local_index[safe_b]]

    def _goal_distance(self, location: np.ndarray) -> np.ndarray:
        """[B] metres from ``location`` to each agent's goal (NaN without a goal)."""
        return np.where(self.goal >= 0, self._pair_distance(location, self.goal), np.nan)

    # -------------------------------------------------------------------- steps
    def action_mask(self) -> np.ndarray:
        """[B, C+1] int8: STOP is always allowed; candidates only while the episode runs."""
        candidates = self.table.ids[self.sim.location] >= 0  # [B, C]
        candidates &= ~self.done[:, None]
        stop = np.ones((self.batch_size, 1), dtype=bool)
        return np.concatenate([stop, candidates], axis=1).astype(np.int8)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action per agent; returns reward [B], finished-now [B] and invalid [B].

        An action the mask forbids (or out of range) moves nobody and counts as an action
        with reward 0 (``invalid`` marks it). Finished agents ignore their action.
        """
        if not self.started:
            raise RuntimeError("call reset before step")
        actions = np.asarray(actions, dtype=np.int64).reshape(self.batch_size)
        acting = ~self.done
        mask = self.action_mask().astype(bool)  # [B, C+1]
        in_range = (actions >= 0) & (actions < mask.shape[1])
        safe = np.where(in_range, actions, STOP_ACTION)
        valid = in_range & mask[np.arange(self.batch_size), safe]
        stop = acting & valid & (safe == STOP_ACTION)
        move = acting & valid & (safe != STOP_ACTION)
        record = move_to_candidates(self.sim, self.table, np.maximum(safe - 1, 0), move)
        self._record(record.location, record.heading, record.elevation, record.acted)
        previous, self.distance = self.distance, self._goal_distance(self.sim.location)
        reward = step_reward(
            stop, move, previous, self.distance, self.goal >= 0, self.config.shaped_reward
        )
        self.actions_taken += acting
        truncated_now = acting & ~stop & (self.actions_taken >= self.config.max_actions)
        self.terminated |= stop
        self.truncated |= truncated_now
        return reward, stop | truncated_now, acting & ~valid

    def teacher_actions(self) -> np.ndarray:
        """[B] the action on a shortest path to the goal (STOP at the goal or when finished).

        The candidate ``c`` minimising ``edge(here, c) + d(c, goal)`` (first one on ties);
        :data:`NO_TEACHER_ACTION` for episodes without a reference path.
        """
        here = self.sim.location
        candidates = self.table.ids[here]  # [B, C]
        to_goal = self._pair_distance(candidates, self.goal[:, None])  # [B, C]
        cost = np.where(candidates >= 0, self._edge_lengths[here] + to_goal, np.inf)  # [B, C]
        action = np.argmin(cost, axis=1) + 1
        action = np.where((here == self.goal) | self.done, STOP_ACTION, action)
        return np.where(self.goal >= 0, action, NO_TEACHER_ACTION)

    # -------------------------------------------------------------- observation
    def observe(self) -> dict[str, np.ndarray]:
        """The batched observation (every array has a leading ``[B]`` axis)."""
        sim, table = self.sim, self.table
        here, view = sim.location, sim.view_index  # [B], [B]
        views = self.features.views(here)  # [B, 36, D]
        candidate_view = table.view[here]  # [B, C]
        agents = np.arange(self.batch_size)[:, None]  # [B, 1]
        visual = views[agents, candidate_view]  # [B, C, D]
        relative_heading = table.heading[here] - sim.heading[:, None]  # [B, C]
        angles = angle_feature(relative_heading, table.elevation[here])  # [B, C, 128]
        candidates = np.concatenate([visual, angles], axis=-1)  # [B, C, D + 128]
        candidates[table.ids[here] < 0] = 0.0
        return {
            "instruction": self.instructions[self.episode_index],  # [B, L]
            "instruction_length": self.instruction_lengths[self.episode_index],  # [B]
            "view_features": views,
            "view_angle_features": _all_view_angle_features()[view],  # [B, 36, 128]
            "candidate_features": candidates,
            "action_mask": self.action_mask(),  # [B, C+1]
            "heading": sim.heading.astype(np.float32)[:, None],  # [B, 1]
            "elevation": sim.elevation.astype(np.float32)[:, None],  # [B, 1]
            "view_index": view.copy(),  # [B]
        }

    def step_info(self) -> dict[str, np.ndarray]:
        """What every step reports, batched ``[B]``."""
        return {
            "instr_id": self.instr_ids[self.episode_index],
            "episode_index": self.episode_index.copy(),
            "epoch": self.epoch.copy(),
            "viewpoint": self.viewpoint_names[self.sim.location],
            "distance_to_goal": self.distance.copy(),
            "teacher_action": self.teacher_actions(),
        }

    # ---------------------------------------------------------- finished agents
    def trajectory(self, agent: int) -> list[list[Any]]:
        """The agent's states ``[[viewpoint, heading, elevation], ...]``, start state first."""
        n = int(self._path_length[agent])
        names = self.viewpoint_names[self._path_location[agent, :n]]
        headings = self._path_heading[agent, :n].tolist()
        elevations = self._path_elevation[agent, :n].tolist()
        return [[str(v), h, e] for v, h, e in zip(names, headings, elevations, strict=True)]

    def metrics(self, agent: int) -> dict[str, float] | None:
        """:func:`envs.metrics.trajectory_metrics` of the agent's path (None without a goal)."""
        episode = self.episodes[self.episode_index[agent]]
        if self.goal[agent] < 0:
            return None
        graph = self.world.graphs[episode.scan]
        n = int(self._path_length[agent])
        path = self.world.local_index[self._path_location[agent, :n]].tolist()
        reference = [graph.require(viewpoint) for viewpoint in episode.path]
        return trajectory_metrics(path, reference, graph.distances)
