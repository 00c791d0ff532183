"""``clipvil train-speaker``: train EnvDrop's speaker on the teacher's routes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "train-speaker"
HELP = "Train the EnvDrop speaker (route -> instruction) for back-translation."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from vln_agent.speaker_train import SpeakerTrainConfig, SpeakerTrainer

    config = SpeakerTrainConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        hidden_size=args.hidden_size,
        seed=args.seed,
        device=args.device,
    )
    best = SpeakerTrainer(args.data, args.features, args.out, config).train(not args.no_progress)
    print(json.dumps(best, indent=2))
    return 0
