"""Steps per second of :class:`envs.gym_env.R2RVectorEnv` with random valid actions.

Writes a random-feature HDF5 file (HAMT layout, ``D`` = 512 by default) for the scans of a
split into a temporary folder, builds the vector env with the features preloaded, and
times ``--steps`` batched steps of uniformly random valid actions (STOP included, so agents
finish and autoreset often). Reports batched steps/s, agent steps/s, and the share of the
time spent in the simulator core (:func:`envs.nav.candidates.move_to_candidates`, which drives
:class:`envs.simulator.BatchSimulator`) and in building observations.

Usage::

    .venv/bin/python benchmarks/bench_gym.py --data-dir ../shared/r2r_real --split val_unseen
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from envs.constants import NUM_VIEWS
from envs.episodes import load_episodes
from envs.features import feature_key
from envs.graph import NavGraphs
from envs.gym_env import R2RVectorEnv
from envs.nav import batch as nav_batch


@dataclass
class Stopwatch:
    """Accumulated seconds of the calls made through :meth:`wrap`."""

    seconds: float = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def write_random_features(data_dir: Path, split: str, path: Path, dim: int, seed: int) -> int:
    """Random float32 ``[36, dim]`` features for every viewpoint of the split's scans."""
    graphs = NavGraphs(data_dir)
    scans = sorted({episode.scan for episode in load_episodes(data_dir, split)})
    rng = np.random.default_rng(seed)
    count = 0
    with h5py.File(path, "w") as file:
        for scan in scans:
            for viewpoint in graphs[scan].viewpoint_ids:
                features = rng.standard_normal((NUM_VIEWS, dim), dtype=np.float32)
                file.create_dataset(feature_key(scan, viewpoint), data=features)
                count += 1
    return count


def random_valid_actions(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[B] an action drawn uniformly among the allowed ones of each row of ``mask`` [B, A]."""
    return np.argmax(rng.random(mask.shape) * mask, axis=1)


def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random_features.h5"
        start = time.perf_counter()
        viewpoints = write_random_features(args.data_dir, args.split, path, args.dim, args.seed)
        seconds = time.perf_counter() - start
        print(f"wrote {viewpoints} viewpoints x [36, {args.dim}] in {seconds:.1f} s")
        start = time.perf_counter()
        env = R2RVectorEnv(
            num_envs=args.batch, data_dir=args.data_dir, features=path, split=args.split
        )
        print(f"env ready in {time.perf_counter() - start:.1f} s")
    core_clock, observe_clock = Stopwatch(), Stopwatch()
    nav_batch.move_to_candidates = core_clock.wrap(nav_batch.move_to_candidates)
    env.core.observe = observe_clock.wrap(env.core.observe)
    rng = np.random.default_rng(args.seed)
    observation, _ = env.reset(seed=args.seed)
    for _ in range(args.warmup):
        observation, *_ = env.step(random_valid_actions(observation["action_mask"], rng))
    core_clock.seconds = observe_clock.seconds = 0.0
    episodes_done = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        actions = random_valid_actions(observation["action_mask"], rng)
        observation, _, terminated, truncated, _ = env.step(actions)
        episodes_done += int((terminated | truncated).sum())
    elapsed = time.perf_counter() - start
    env.close()
    return {
        "batch_steps_per_s": args.steps / elapsed,
        "agent_steps_per_s": args.steps * args.batch / elapsed,
        "episodes_per_s": episodes_done / elapsed,
        "core_share": core_clock.seconds / elapsed,
        "observe_share": observe_clock.seconds / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/r2r_real"))
    parser.add_argument("--split", default="val_unseen")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args)
    print(
        f"batch {args.batch}, D {args.dim}, {args.split}: "
        f"{result['batch_steps_per_s']:.0f} batched steps/s, "
        f"{result['agent_steps_per_s']:.0f} agent steps/s, "
        f"{result['episodes_per_s']:.0f} episodes/s; "
        f"simulator core {100 * result['core_share']:.0f}% of the time, "
        f"observations {100 * result['observe_share']:.0f}%"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
