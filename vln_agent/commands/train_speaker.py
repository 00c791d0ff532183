"""``clipvil train-speaker``: train EnvDrop's speaker on the teacher's routes."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train-speaker"
HELP = "Train the EnvDrop speaker (route -> instruction) for back-translation."


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.provenance import add_feature_flags
    from vln_agent.speaker_train import SpeakerTrainConfig
    from vln_agent.training.settings import add_run_flags, add_settings_flags

    parser.add_argument(
        "--data", type=Path, required=True, help="data root (connectivity/, R2R_*.json)"
    )
    parser.add_argument(
        "--features", type=Path, required=True, help="panorama features (.h5 / .tsv)"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    add_run_flags(parser)
    add_feature_flags(parser, "the --resume checkpoint")
    add_settings_flags(parser, SpeakerTrainConfig)


def run(args: argparse.Namespace) -> int:
    from vln_agent.speaker_train import (
        SpeakerTrainConfig,
        SpeakerTrainer,
        load_speaker_train_config,
    )
    from vln_agent.training.settings import recipe_path, settings_overrides
    from vln_agent.training.trainer import run_training

    config = load_speaker_train_config(
        recipe_path(args.config), **settings_overrides(args, SpeakerTrainConfig)
    )
    return run_training(
        lambda context: SpeakerTrainer(
            args.data,
            args.features,
            args.out,
            config,
            context,
            args.resume,
            feature_columns=args.feature_columns,
            allow_other_features=args.allow_other_features,
        ),
        config,
        progress=not args.no_progress,
    )
