"""``clipvil train-vln``: train the EnvDrop follower on panorama features."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train-vln"
HELP = "Train the EnvDrop follower (IL + A2C) on CLIP panorama features; torchrun-ready."


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.provenance import add_feature_flags
    from vln_agent.train import TrainConfig
    from vln_agent.training.settings import add_run_flags, add_settings_flags

    parser.add_argument(
        "--data", type=Path, required=True, help="data root (connectivity/, R2R_*.json)"
    )
    parser.add_argument(
        "--features", type=Path, required=True, help="panorama features (.h5 / .tsv)"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    add_run_flags(parser).add_argument(
        "--resume-from",
        type=Path,
        metavar="CKPT",
        help="continue another run's checkpoint in RUN_DIR (e.g. fine-tune with a new --config)",
    )
    add_feature_flags(parser, "the --resume / --resume-from checkpoint or --speaker")
    add_settings_flags(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from vln_agent.train import TrainConfig, VLNTrainer, load_train_config
    from vln_agent.training.settings import recipe_path, settings_overrides
    from vln_agent.training.trainer import run_training

    config = load_train_config(recipe_path(args.config), **settings_overrides(args, TrainConfig))
    resume = args.resume_from if args.resume_from is not None else args.resume
    return run_training(
        lambda context: VLNTrainer(
            args.data,
            args.features,
            args.out,
            config,
            context,
            resume,
            feature_columns=args.feature_columns,
            allow_other_features=args.allow_other_features,
        ),
        config,
        progress=not args.no_progress,
    )
