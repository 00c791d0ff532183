"""Pretraining step cost: stored grid features vs the CLIP encoder run on the fly, frozen or
trained end to end with its own SGD (CLIP-ViL's setting), and the second stage's extra VQA
batch.

Run from the repository root (after ``clipvil features --images ... --grid`` has written
the two VQA feature files of the shipped small CLIP)::

    .venv/bin/python -m benchmarks.bench_pretrain --features F_train.h5 F_val.h5
        [--data data/small/qa] [--encoder checkpoints/clipvil-small-synthetic.pt]
        [--rounds 5] [--steps 4] [--threads 1]

Cases (the ``pretrain-vl`` recipe's model, batch 32), taking turns in every round so that
other jobs' load hits them alike; each round times ``--steps`` training steps
(:meth:`VLPretrainer.train_step`: batch, masks, forward, backward, optimizer) per case;
reported: the median seconds per step over rounds and its ratio to stage 1 on stored
features. On-the-fly cases fill the in-memory image cache before timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vqa_ve.pretrain.trainer import VLPretrainer, load_pretrain_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def build(name: str, args: argparse.Namespace, out: Path) -> VLPretrainer:
    config = load_pretrain_config("pretrain-vl", device="cpu", val_captions="", qa_eval_split="")
    features: list[Path] = list(args.features)
    if name.startswith("stage 2"):
        config = dataclasses.replace(config, qa_from=0)
    if "encoder" in name:
        features = []
        config = dataclasses.replace(
            config,
            image_encoder=str(args.encoder),
            finetune_encoder="trained" in name,
            qa_split="",
        )
    trainer = VLPretrainer(args.data, features, out / name.replace(" ", "-"), config)
    if "encoder" in name:
        for caption in trainer.captions:  # fill the image cache (untimed)
            trainer.features[caption.image_id]
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, nargs=2, required=True, metavar="F.h5")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "small" / "qa")
    parser.add_argument(
        "--encoder", type=Path, default=REPO_ROOT / "checkpoints" / "clipvil-small-synthetic.pt"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [
        "stage 1, stored features",
        "stage 2, stored features",
        "stage 1, frozen encoder",
        "stage 1, trained encoder (SGD)",
    ]
    with tempfile.TemporaryDirectory() as folder:
        trainers = {name: build(name, args, Path(folder)) for name in names}
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer.train_step()
                    trainer.step += 1
                times[name].append((time.perf_counter() - start) / args.steps)
    base = statistics.median(times[names[0]])
    print(f"torch threads {args.threads}, {args.rounds} rounds x {args.steps} steps, batch 32")
    print("| case | s / step (median) | ratio |")
    print("|---|---:|---:|")
    for name in names:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {median / base:.1f}x |")


if __name__ == "__main__":
    main()
