"""``clipvil pretrain-vl``: pretrain the fusion transformer on image-caption pairs (+ VQA)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "pretrain-vl"
HELP = "Pretrain the single-stream transformer (MLM + image-text matching, then + QA)."


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.training.settings import add_run_flags, add_settings_flags
    from vqa_ve.pretrain.config import PretrainConfig
    from vqa_ve.training.trainer import QA_RECIPE_DIR

    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="data root: COCO-style captions (coco/annotations/captions_{train,val}2014.json "
        "unless --train-captions / --val-captions say otherwise) and, for the QA stage, "
        "vqa/v2_*_train2014_*.json",
    )
    parser.add_argument(
        "--features",
        type=Path,
        nargs="+",
        default=[],
        metavar="F.h5",
        help="image features keyed by the captions' file stems (clipvil features --images "
        "--grid); several files are read as one; required unless --image-encoder encodes "
        "the images on the fly (default: none)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, logs)")
    add_run_flags(parser, QA_RECIPE_DIR)
    add_settings_flags(parser, PretrainConfig)


def run(args: argparse.Namespace) -> int:
    from vln_agent.training.settings import settings_overrides
    from vln_agent.training.trainer import run_training
    from vqa_ve.pretrain.config import PretrainConfig
    from vqa_ve.pretrain.trainer import VLPretrainer, load_pretrain_config

    config = load_pretrain_config(args.config, **settings_overrides(args, PretrainConfig))
    return run_training(
        lambda context: VLPretrainer(
            args.data, args.features, args.out, config, context, args.resume
        ),
        config,
        progress=not args.no_progress,
    )
