"""Training throughput of the EnvDrop follower: iterations/s, agent steps/s, time in the env.

Builds a data root in a temporary folder whose *train* split is a real split (val_unseen by
default: 11 unseen houses, 2349 instructions) with random float32 ``[36, D]`` features for
every viewpoint of its scans (HAMT layout), then runs :class:`vln_agent.train.VLNTrainer`
for ``--warmup`` + ``--iterations`` optimizer steps (no evaluation) and splits the time of
the timed ones into:

- env: :meth:`R2RVectorEnv.reset` and :meth:`R2RVectorEnv.step` (simulator moves,
  observations, rewards, teacher actions, trajectories and metrics of finished episodes);
- inputs: :func:`vln_agent.rollout.to_inputs` (numpy observation -> tensors on the device);
- update: backward, gradient averaging, clipping and the optimizer step;
- model: the rest (the follower's forward passes, action choice, loss assembly).

An agent step is one action of an agent whose episode has not ended (batch-synchronous
rollouts also step finished agents with STOP; those are not counted). With ``envdrop``
feedback one iteration is two rollouts (teacher-forced, then sampled).

Usage::

    .venv/bin/python benchmarks/bench_train.py [--iterations 10] [--batch 64] [--hidden 512]
        [--dim 512] [--feedback envdrop] [--device cpu] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

import vln_agent.rollout
from envs.constants import NUM_VIEWS
from envs.episodes import load_episodes, split_path
from envs.features import feature_key
from envs.graph import CONNECTIVITY_DIR, NavGraphs
from vln_agent.train import VLNTrainer, load_train_config

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "r2r_real"


@dataclass
class Stopwatch:
    """Accumulated seconds and calls of the functions wrapped by :meth:`wrap`."""

    seconds: float = 0.0
    calls: int = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return timed

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def build_data_root(data_dir: Path, split: str, root: Path, dim: int, seed: int) -> Path:
    """``root`` with the split's graphs, the split as ``R2R_train.json`` and random
    features; returns the feature file."""
    scans = sorted({episode.scan for episode in load_episodes(data_dir, split)})
    (root / CONNECTIVITY_DIR).mkdir(parents=True)
    for scan in scans:
        name = f"{scan}_connectivity.json"
        shutil.copy(data_dir / CONNECTIVITY_DIR / name, root / CONNECTIVITY_DIR / name)
    shutil.copy(split_path(data_dir, split), root / "R2R_train.json")
    graphs = NavGraphs(root)
    rng = np.random.default_rng(seed)
    path = root / "features.h5"
    with h5py.File(path, "w") as file:
        for scan in scans:
            for viewpoint in graphs[scan].viewpoint_ids:
                features = rng.standard_normal((NUM_VIEWS, dim), dtype=np.float32)  # [36, D]
                file.create_dataset(feature_key(scan, viewpoint), data=features)
    return path


@dataclass
class Clocks:
    """Where the time of the training steps goes."""

    reset: Stopwatch
    step: Stopwatch
    inputs: Stopwatch
    update: Stopwatch
    agent_steps: int = 0

    def clear(self) -> None:
        for clock in (self.reset, self.step, self.inputs, self.update):
            clock.reset()
        self.agent_steps = 0


def instrument(trainer: VLNTrainer) -> Clocks:
    """Wrap the env, the input conversion and the update of ``trainer`` with stopwatches."""
    clocks = Clocks(Stopwatch(), Stopwatch(), Stopwatch(), Stopwatch())
    env = trainer.env
    env.reset = clocks.reset.wrap(env.reset)
    step = clocks.step.wrap(env.step)

    def counted_step(actions: Any) -> Any:
        clocks.agent_steps += int((~env.core.done).sum())
        return step(actions)

    env.step = counted_step
    vln_agent.rollout.to_inputs = clocks.inputs.wrap(vln_agent.rollout.to_inputs)
    trainer.optimize = clocks.update.wrap(trainer.optimize)
    return clocks


def run(args: argparse.Namespace) -> dict[str, float]:
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        features = build_data_root(args.data_dir, args.split, Path(folder), args.dim, args.seed)
        print(f"random features written in {time.perf_counter() - start:.1f} s")
        config = load_train_config(
            None,
            iterations=args.warmup + args.iterations,
            batch_size=args.batch,
            feedback=args.feedback,
            hidden_size=args.hidden,
            feature_dropout=args.feature_dropout,
            device=args.device,
            seed=args.seed,
        )
        start = time.perf_counter()
        trainer = VLNTrainer(folder, features, Path(folder) / "run", config)
        print(f"trainer ready in {time.perf_counter() - start:.1f} s")
        clocks = instrument(trainer)
        for _ in range(args.warmup):
            trainer.train_step()
        clocks.clear()
        profiler = cProfile.Profile() if args.profile else None
        synchronize = torch.cuda.synchronize if trainer.context.device.type == "cuda" else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(args.iterations):
            trainer.train_step()
        if synchronize:
            synchronize()
        elapsed = time.perf_counter() - start
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        env_seconds = clocks.reset.seconds + clocks.step.seconds
        return {
            "instructions": len(trainer.sampler.instr_ids),
            "device": str(trainer.context.device),
            "threads": torch.get_num_threads(),
            "seconds": elapsed,
            "iterations_per_s": args.iterations / elapsed,
            "agent_steps_per_s": clocks.agent_steps / elapsed,
            "batched_steps_per_s": clocks.step.calls / elapsed,
            "env_share": env_seconds / elapsed,
            "env_step_share": clocks.step.seconds / elapsed,
            "env_reset_share": clocks.reset.seconds / elapsed,
            "inputs_share": clocks.inputs.seconds / elapsed,
            "update_share": clocks.update.seconds / elapsed,
            "model_share": 1.0
            - (env_seconds + clocks.inputs.seconds + clocks.update.seconds) / elapsed,
        }


def print_table(args: argparse.Namespace, result: dict[str, float]) -> None:
    print(
        f"\ntrain = {args.split} ({result['instructions']} instructions), batch {args.batch}, "
        f"hidden {args.hidden}, D {args.dim}, {args.feedback}, "
        f"feature dropout {args.feature_dropout}, {result['device']}, "
        f"{result['threads']} torch threads, {args.iterations} timed iterations"
    )
    rows = [
        ("iterations/s", f"{result['iterations_per_s']:.2f}"),
        ("agent steps/s", f"{result['agent_steps_per_s']:.0f}"),
        ("batched env steps/s", f"{result['batched_steps_per_s']:.1f}"),
        ("env (reset + step)", f"{100 * result['env_share']:.1f} %"),
        ("  env.step", f"{100 * result['env_step_share']:.1f} %"),
        ("  env.reset", f"{100 * result['env_reset_share']:.1f} %"),
        ("obs -> tensors", f"{100 * result['inputs_share']:.1f} %"),
        ("backward + optimizer", f"{100 * result['update_share']:.1f} %"),
        ("model forward + rest", f"{100 * result['model_share']:.1f} %"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value:>10}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="val_unseen", help="real split used as train")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dim", type=int, default=512, help="feature size D")
    parser.add_argument("--feedback", choices=("envdrop", "teacher", "sample"), default="envdrop")
    parser.add_argument(
        "--feature-dropout", type=float, default=0.4, help="dropout on the visual channels"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args(argv)
    print_table(args, run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
