"""QA training throughput with stored features vs images encoded on the fly, and image-folder
feature extraction against the encoder's own ceiling.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_qa [--data data/small/qa] [--task vqa]
        [--encoder checkpoints/clipvil-small-synthetic.pt] [--threads 1]

Two measurements, each comparing its cases in the same run, the cases taking turns in every
round so that other jobs' load hits them alike (medians over rounds; read the ratios):

(a) ``train-qa`` examples/s (:meth:`QATrainer.train_step`: batch, forward, backward, AdamW)
    on the task's training split, three trainers of the same settings:

    * stored features: ``--features`` files written by ``clipvil features --images --grid``
      with the same encoder (written here first, untimed);
    * frozen encoder on the fly: ``--image-encoder W`` (images decoded and preprocessed once
      into the in-memory cache before timing; the cache fill is reported apart);
    * fine-tuned encoder: ``--image-encoder W --finetune-encoder``.

(b) ``extract_image_features`` of one image folder (decode, preprocess, encode, HDF5 write)
    in images/s, as a share of the ceiling: the encoder's batched forward on images already
    loaded as tensors, same batch size (``encode_image``, or ``encode_image_and_grid`` for
    ``--grid``: what extraction runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vln_agent.encoders import CLIPEncoder, load_encoder
from vln_agent.extract_defaults import DEFAULT_IMAGE_BATCH_SIZE
from vln_agent.extract_images import extract_image_features, list_images
from vqa_ve.datasets import EVAL_SPLITS, TASK_DIRS, TRAIN_SPLITS
from vqa_ve.training.trainer import QATrainer, load_qa_train_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / "data" / "small" / "qa"
DEFAULT_ENCODER = REPO_ROOT / "checkpoints" / "clipvil-small-synthetic.pt"
#: VQA's image folders (the other tasks keep theirs in one folder tree).
VQA_FOLDERS = (TRAIN_SPLITS["vqa"], EVAL_SPLITS["vqa"])


def interleaved_medians(cases: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall seconds of each case, the cases taking turns in every round."""
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(repeats):
        for case, case_times in zip(cases, times, strict=True):
            start = time.perf_counter()
            case()
            case_times.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def image_folders(data: Path, task: str) -> list[Path]:
    """The folders ``clipvil features --images`` encodes for a task's train and val images."""
    root = data / TASK_DIRS[task]
    if task == "vqa":
        return [root / name for name in VQA_FOLDERS]
    return [root / ("images" if task == "snli-ve" else "vcr1images")]


def training_cases(args: argparse.Namespace, encoder: CLIPEncoder, tmp: Path) -> None:
    """(a): stored features vs a frozen encoder on the fly vs a fine-tuned one."""
    files = []
    start = time.perf_counter()
    for folder in image_folders(args.data, args.task):
        files.append(tmp / f"{folder.name}.h5")
        extract_image_features(folder, encoder, files[-1], grid=True, progress=False)
    print(f"stored features written in {time.perf_counter() - start:.1f} s (untimed)")
    settings = {
        "task": args.task,
        "batch_size": args.batch_size,
        "iterations": 10**6,
        "device": "cpu",
        "eval_every": 10**6,
    }
    on_the_fly = {"image_encoder": str(args.encoder)}
    variants = {
        "stored features": ({}, files),
        "frozen encoder, on the fly": (on_the_fly, []),
        "fine-tuned encoder": ({**on_the_fly, "finetune_encoder": True}, []),
    }
    trainers = {}
    for name, (extra, features) in variants.items():
        config = load_qa_train_config(None, **settings, **extra)
        trainer = QATrainer(args.data, features, tmp / name.replace(" ", "_"), config)
        if extra:
            images = sorted({example.image_id for example in trainer.train_examples})
            start = time.perf_counter()
            for image_id in images:
                trainer.features[image_id]
            seconds = time.perf_counter() - start
            print(
                f"{name}: {len(images)} training images decoded + preprocessed into the cache "
                f"in {seconds:.1f} s ({len(images) / seconds:.0f} images/s, untimed)"
            )
        trainer.train_step()  # first-call costs stay untimed
        trainers[name] = trainer

    def steps(trainer: QATrainer) -> Callable[[], object]:
        return lambda: [trainer.train_step() for _ in range(args.steps)]

    load = os.getloadavg()[0]
    seconds = interleaved_medians([steps(t) for t in trainers.values()], args.repeats)
    examples = args.steps * args.batch_size
    rates = [examples / s for s in seconds]
    print(
        f"\n(a) train-qa {args.task}, {len(next(iter(trainers.values())).train_examples)} "
        f"training examples, batch {args.batch_size}, {args.steps} steps per round, median of "
        f"{args.repeats}, {torch.get_num_threads()} torch threads, encoder "
        f"{encoder.model_name} {encoder.image_size[0]} px, load {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(f"| {'case':<28} | {'examples/s':>10} | {'vs stored':>9} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 11}|")
    for name, rate in zip(trainers, rates, strict=True):
        print(f"| {name:<28} | {rate:>10.1f} | {rate / rates[0]:>9.3f} |")


def extraction_cases(args: argparse.Namespace, encoder: CLIPEncoder, tmp: Path) -> None:
    """(b): ``extract_image_features`` of a folder vs the bare batched forward."""
    folder = image_folders(args.data, args.task)[-1]
    count = len(list_images(folder))
    size = encoder.image_size
    out = tmp / "extract.h5"
    batches = -(-count // args.extract_batch_size)
    images = torch.randn(args.extract_batch_size, 3, *size)  # [B, 3, H, W]
    for grid in (False, True):

        def ceiling(grid: bool = grid) -> object:
            with torch.inference_mode():
                for _ in range(batches):
                    if grid:
                        encoder.encode_image_and_grid(images)  # [B, E], [B, h, w, C]
                    else:
                        encoder.encode_image(images)  # [B, E]
            return None

        def extract(grid: bool = grid) -> object:
            out.unlink(missing_ok=True)
            return extract_image_features(
                folder,
                encoder,
                out,
                grid=grid,
                batch_size=args.extract_batch_size,
                workers=args.workers,
                progress=False,
            )

        extract()  # warm up
        load = os.getloadavg()[0]
        ceiling_s, extract_s = interleaved_medians([ceiling, extract], args.repeats)
        ceiling_rate = batches * args.extract_batch_size / ceiling_s
        print(
            f"\n(b) extract_image_features {folder.relative_to(args.data)} ({count} images"
            f"{', --grid' if grid else ''}), batch {args.extract_batch_size}, {args.workers} "
            f"decode threads, median of {args.repeats}, load {load:.1f} -> "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(f"| {'case':<28} | {'images/s':>9} | {'of ceiling':>10} |")
        print(f"|{'-' * 30}|{'-' * 11}|{'-' * 12}|")
        print(f"| {'ceiling (forward only)':<28} | {ceiling_rate:>9.1f} | {1:>10.0%} |")
        rate = count / extract_s
        print(f"| {'extract_image_features':<28} | {rate:>9.1f} | {rate / ceiling_rate:>10.0%} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="QA data root")
    parser.add_argument("--task", choices=tuple(TASK_DIRS), default="vqa")
    parser.add_argument("--encoder", type=Path, default=DEFAULT_ENCODER, help="clipvil checkpoint")
    parser.add_argument("--batch-size", type=int, default=32, help="train-qa batch")
    parser.add_argument("--steps", type=int, default=3, help="training steps per case and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    parser.add_argument("--extract-batch-size", type=int, default=DEFAULT_IMAGE_BATCH_SIZE)
    parser.add_argument("--workers", type=int, default=2, help="extraction decode threads")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--only", choices=("train", "extract"), help="one measurement only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{os.cpu_count()} CPUs; the load average is the whole machine's (other jobs too)")
    encoder = load_encoder(args.encoder)
    with tempfile.TemporaryDirectory() as folder:
        if args.only != "extract":
            training_cases(args, encoder, Path(folder))
        if args.only != "train":
            extraction_cases(args, encoder, Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
