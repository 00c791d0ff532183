"""``clipvil train-qa``: train the QA fusion model on VQA v2, SNLI-VE or VCR."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train-qa"
HELP = "Train the fusion model (image features + text) on VQA v2, SNLI-VE or VCR."


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.training.settings import add_run_flags, add_settings_flags
    from vqa_ve.training.trainer import QA_RECIPE_DIR, QATrainConfig

    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="QA data root: vqa/v2_*_{train2014,val2014}_*.json, snli_ve/snli_ve_{train,dev}"
        ".jsonl or vcr/{train,val}.jsonl",
    )
    parser.add_argument(
        "--features",
        type=Path,
        nargs="+",
        default=[],
        metavar="F.h5",
        help="image features keyed by image id (clipvil features --images [--grid]); several "
        "files (one per image folder) are read as one; required unless --image-encoder "
        "encodes the data's images on the fly (default: none)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    add_run_flags(parser, QA_RECIPE_DIR)
    add_settings_flags(parser, QATrainConfig)


def run(args: argparse.Namespace) -> int:
    from vln_agent.training.settings import settings_overrides
    from vln_agent.training.trainer import run_training
    from vqa_ve.training.trainer import (
        QATrainConfig,
        QATrainer,
        load_qa_train_config,
        qa_recipe_path,
    )

    config = load_qa_train_config(
        qa_recipe_path(args.config), **settings_overrides(args, QATrainConfig)
    )
    return run_training(
        lambda context: QATrainer(args.data, args.features, args.out, config, context, args.resume),
        config,
        progress=not args.no_progress,
    )
