"""``clipvil train-vln``: train the EnvDrop follower on panorama features."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "train-vln"
HELP = "Train the EnvDrop follower (IL + A2C) on CLIP panorama features; torchrun-ready."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="data root (connectivity/, R2R_*.json)"
    )
    parser.add_argument(
        "--features", type=Path, required=True, help="panorama features (.h5 / .tsv)"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    parser.add_argument("--config", type=Path, help="JSON file of training settings (TrainConfig)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from RUN_DIR/latest.pt")
    resume.add_argument(
        "--resume-from",
        type=Path,
        metavar="CKPT",
        help="continue another run's checkpoint in RUN_DIR (e.g. fine-tune with a new --config)",
    )
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--feedback", choices=("envdrop", "teacher", "sample", "student"))
    parser.add_argument("--eval-every", type=int)
    parser.add_argument(
        "--seed",
        type=int,
        help="random seed; with --resume/--resume-from, another seed than the checkpoint's "
        "draws fresh batches and random states from it",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--aug-paths", type=str, help="augmentation paths (clipvil sample-paths)")
    parser.add_argument("--speaker", type=str, help="speaker checkpoint for back-translation")
    parser.add_argument(
        "--aug-environment-dropout",
        action="store_true",
        default=None,
        help="one feature-channel dropout mask per augmented batch, without a speaker too",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from vln_agent.training.distributed import init_distributed, shutdown
    from vln_agent.train import VLNTrainer, load_train_config

    config = load_train_config(
        args.config,
        iterations=args.iterations,
        batch_size=args.batch_size,
        feedback=args.feedback,
        eval_every=args.eval_every,
        seed=args.seed,
        device=args.device,
        aug_paths=args.aug_paths,
        speaker=args.speaker,
        aug_environment_dropout=args.aug_environment_dropout,
    )
    context = init_distributed(None if config.device == "auto" else config.device)
    try:
        resume = args.resume_from if args.resume_from is not None else args.resume
        trainer = VLNTrainer(args.data, args.features, args.out, config, context, resume)
        best = trainer.train(progress=not args.no_progress)
    finally:
        shutdown(context)
    if context.is_main:
        print(json.dumps(best, indent=2))
    return 0
