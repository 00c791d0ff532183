"""``clipvil eval-qa``: run a trained QA model on a split; write the official prediction
file and, on a labelled split, ``metrics.json``.

Example::

    clipvil eval-qa --checkpoint runs/vqa/best.pt --data DIR --features coco.h5 \\
        --split val2014 --out eval/vqa

A checkpoint of ``train-qa --image-encoder`` holds its encoder (frozen or fine-tuned) and
encodes the images under ``--data`` itself: leave ``--features`` out.

Writes ``OUT/results.json`` (VQA), ``OUT/predictions.jsonl`` (SNLI-VE) or
``OUT/leaderboard.csv`` (VCR, answers and rationales given each answer), then
``OUT/metrics.json`` (the official scores in percent, with the task, split and checkpoint)
when the split has labels; both are computed before either is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "eval-qa"
HELP = "Run a QA model (train-qa) on a split: official prediction file + metrics.json."
#: Examples per forward pass.
DEFAULT_BATCH_SIZE = 64
METRICS_FILE = "metrics.json"


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.training.distributed import DEVICES
    from vqa_ve.models.fusion import TASKS

    parser.add_argument("--checkpoint", type=Path, required=True, help="a train-qa checkpoint")
    parser.add_argument(
        "--task", choices=TASKS, help="the checkpoint's task (checked; default: the checkpoint's)"
    )
    parser.add_argument("--data", type=Path, required=True, help="QA data root (as train-qa's)")
    parser.add_argument(
        "--features",
        type=Path,
        nargs="+",
        default=[],
        metavar="F.h5",
        help="image features (clipvil features --images); several files are read as one; "
        "left out for a checkpoint that encodes images itself (train-qa --image-encoder), "
        "which reads the images under --data (default: none)",
    )
    parser.add_argument(
        "--split",
        help="split name: VQA val2014/test2015..., SNLI-VE dev/test, VCR val/test "
        "(default: the one training evaluates)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"examples per batch (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--allow-other-features",
        action="store_true",
        help="use image features made by another encoder than the checkpoint was trained on "
        "(same token shape), with a warning (default: off, such features are refused)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto: CUDA when available, else the CPU (default: auto)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import torch

    from envs.errors import DataError
    from envs.fileio import make_output_dir, write_json
    from vqa_ve.data.vqa import AnswerVocabulary
    from vqa_ve.datasets import (
        EVAL_SPLITS,
        FeatureFiles,
        check_image_provenance,
        evaluation_examples,
        load_split,
    )
    from vqa_ve.encoding import EncodedQAModel, ImageFiles, check_inputs
    from vqa_ve.models import load_qa_model
    from vqa_ve.training.evaluation import PREDICTION_FILES, predict, score, write_prediction_file

    model, tokenizer, payload = load_qa_model(args.checkpoint)
    task = model.config.task
    if args.task is not None and args.task != task:
        raise DataError(args.checkpoint, f"is a {task} model, not {args.task}")
    split = load_split(task, args.data, args.split or EVAL_SPLITS[task], require_labels=False)
    features: FeatureFiles | ImageFiles
    if isinstance(model, EncodedQAModel):
        if args.features:
            raise DataError(
                args.features[0],
                "the checkpoint encodes the images under --data itself (train-qa "
                "--image-encoder): leave --features out",
            )
        features = ImageFiles(args.data, task, model.image_encoder, cache=False)
    else:
        if not args.features:
            raise DataError("--features", "required: the checkpoint reads stored image features")
        features = FeatureFiles(args.features)
        warning = check_image_provenance(
            features, payload, args.checkpoint, allow_other=args.allow_other_features
        )
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
    check_inputs(features, evaluation_examples(split), split.path)
    answers = AnswerVocabulary(tuple(payload["extra"]["answers"])) if task == "vqa" else None
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    model.to(device)
    predictions = predict(model, split, tokenizer, features, answers, args.batch_size, device)
    metrics = score(split, predictions) if split.labelled else None
    out = make_output_dir(args.out)
    write_prediction_file(task, out / PREDICTION_FILES[task], predictions)
    if metrics is not None:
        record = {"task": task, "split": split.split, "checkpoint": str(args.checkpoint)}
        write_json(out / METRICS_FILE, {**record, **metrics})
        print(json.dumps(metrics, indent=2))
    return 0
