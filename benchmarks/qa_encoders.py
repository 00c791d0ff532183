"""CLIP-ViL's comparison on the embedded QA data: CLIP grid features vs the in-domain
supervised encoder vs a random init, beside the blind baselines, for VQA, SNLI-VE and VCR.

For every task, encoder and seed this trains the shipped recipe (``train-qa --config
qa-TASK``) on the features of that encoder, evaluating the unseen-house val and the
lighting-shifted val at every evaluation; ``question-only`` is the same model trained with
``--blind`` (CLIP features zeroed), ``majority`` the training split's most frequent answer
(:mod:`vqa_ve.baselines`). How the table reads a run, so that it reports the run's level
and not its best moment: per seed, the median of the last three evaluations on each val;
then the mean and the spread (half the range) over seeds; ``best`` is the best single val
evaluation over seeds, for reference only (it is chosen on val). The standard error a
split of n items allows at accuracy p is sqrt(p (1 - p) / n); it is printed under the table.

Everything is resumable: feature files and finished runs are kept, a killed run resumes
from its ``latest.pt``. The README's table was made with::

    .venv/bin/python benchmarks/qa_encoders.py --world data/small \\
        --supervised runs/qa/supervised.pt --out runs/qa-encoders --seeds 0,1 --jobs 2

where ``runs/qa/supervised.pt`` is ``clipvil pretrain-supervised --data data/small --out
runs/qa/supervised.pt`` (the navigation half's in-domain encoder, same architecture).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vqa_ve.protocol import LAST_EVALUATIONS as LAST
from vqa_ve.protocol import METRICS as METRIC
from vqa_ve.protocol import SHIFT_SPLITS, VAL_SPLITS, evaluations, run_cell, run_level

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CLIP = ROOT / "checkpoints" / "clipvil-small-synthetic.pt"
MODEL = "clipvil-small"
#: Image folders under WORLD/qa, one feature file each.
IMAGE_FOLDERS = {
    "vqa-train": "vqa/train2014",
    "vqa-val": "vqa/val2014",
    "vqa-shift": "vqa/valshift2014",
    "snli-ve": "snli_ve/images",
    "vcr": "vcr/vcr1images",
}
TASK_FOLDERS = {
    "vqa": ("vqa-train", "vqa-val", "vqa-shift"),
    "snli-ve": ("snli-ve",),
    "vcr": ("vcr",),
}
#: (train, val, shifted val) split names per task.
TRAIN_SPLITS = {"vqa": "train2014", "snli-ve": "train", "vcr": "train"}
SPLITS = {task: (TRAIN_SPLITS[task], VAL_SPLITS[task], SHIFT_SPLITS[task]) for task in METRIC}
#: Rows of the table: (name, feature encoder, blind).
ARMS = (
    ("CLIP (shipped small CLIP)", "clip", False),
    ("in-domain supervised", "supervised", False),
    ("random init", "random", False),
    ("question-only (blind)", "clip", True),
)
ARM_NAMES = ("clip", "supervised", "random", "blind")


def extract(world: Path, out: Path, supervised: Path | None, kinds: set[str]) -> dict[str, Path]:
    """Grid features of every QA image folder for each encoder: ``{encoder: folder}``."""
    from vln_agent.encoders import create_encoder_of_kind
    from vln_agent.extract_images import extract_image_features

    weights = {"clip": str(SHIPPED_CLIP), "supervised": str(supervised), "random": None}
    folders = {}
    for kind, pretrained in weights.items():
        if kind not in kinds:
            continue
        folder = out / "features" / kind
        folder.mkdir(parents=True, exist_ok=True)
        folders[kind] = folder
        encoder, attrs = create_encoder_of_kind(kind, MODEL, pretrained, seed=0)
        for name, images in IMAGE_FOLDERS.items():
            target = folder / f"{name}.h5"
            if target.exists():
                continue
            start = time.perf_counter()
            extract_image_features(
                world / "qa" / images, encoder, target, grid=True, progress=False, attrs=attrs
            )
            print(f"features {kind}/{name}: {time.perf_counter() - start:.0f} s", flush=True)
    return folders


def train(
    world: Path,
    run: Path,
    task: str,
    features: list[Path],
    seed: int,
    blind: bool,
    extra: list[str],
) -> None:
    """One ``train-qa`` run (resumed when killed); ``run/cell.json`` marks it finished."""
    argv = ["--task", task, "--data", str(world / "qa"), "--config", f"qa-{task}"]
    argv += ["--features", *map(str, features), "--seed", str(seed), "--device", "cpu"]
    argv += ["--also-evaluate", SPLITS[task][2], *extra]
    if blind:
        argv.append("--blind")
    record = run_cell(run, argv)
    if record is not None:
        print(f"{run}: {record['seconds']:.0f} s", flush=True)


def majority(world: Path, task: str) -> dict[str, float]:
    from vqa_ve.baselines import majority_predictions
    from vqa_ve.datasets import load_split
    from vqa_ve.training.evaluation import score

    train_name, val, shift = SPLITS[task]
    train_split = load_split(task, world / "qa", train_name)
    scores = {}
    for key, name in (("val", val), ("shift", shift)):
        split = load_split(task, world / "qa", name)
        scores[key] = score(split, majority_predictions(train_split, split))[METRIC[task]]
    return scores


def split_size(world: Path, task: str) -> int:
    from vqa_ve.datasets import load_split

    return len(load_split(task, world / "qa", SPLITS[task][1]).records)


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def report(world: Path, out: Path, tasks: list[str], seeds: list[int]) -> str:
    lines, records = [], []
    for task in tasks:
        metric = METRIC[task]
        lines += [
            f"**{task}** ({metric}; val = unseen houses, shift = the same views under other "
            f"lighting; median of the last {LAST} evaluations per seed, mean ± half-range "
            f"over seeds {','.join(map(str, seeds))})",
            "",
            "| features | val | shift | best val (chosen on val) | train time / seed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, kind, blind in ARMS:
            cells = [out / "runs" / task / arm_dir(kind, blind) / f"seed{s}" for s in seeds]
            levels = [run_level(cell, task, LAST) for cell in cells]
            val = [level.val for level in levels]
            shift = [level.shift for level in levels]
            best = max(r["val"] for cell in cells for r in evaluations(cell, task))
            secs = [json.loads((c / "cell.json").read_text())["seconds"] for c in cells]
            lines.append(
                f"| {name} | {statistics.mean(val):.1f} ± {spread(val):.1f} | "
                f"{statistics.mean(shift):.1f} ± {spread(shift):.1f} | {best:.1f} | "
                f"{statistics.mean(secs) / 60:.1f} min |"
            )
            records.append(
                {
                    "task": task,
                    "features": name,
                    "val": val,
                    "shift": shift,
                    "best": best,
                    "seconds": secs,
                }
            )
        base = majority(world, task)
        lines.append(f"| majority answer | {base['val']:.1f} | {base['shift']:.1f} | | |")
        records.append({"task": task, "features": "majority answer", **base})
        n = split_size(world, task)
        se = 100 * math.sqrt(0.5 * 0.5 / n)
        lines += ["", f"val: {n} items; standard error at 50 %: ±{se:.1f} points.", ""]
    (out / "results.json").write_text(json.dumps(records, indent=1))
    return "\n".join(lines)


def arm_dir(kind: str, blind: bool) -> str:
    return f"{kind}-blind" if blind else kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=ROOT / "data" / "small")
    parser.add_argument("--supervised", type=Path, help="pretrain-supervised checkpoint")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "qa-encoders")
    parser.add_argument("--tasks", default="vqa,snli-ve,vcr")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=2, help="train-qa runs at once")
    parser.add_argument(
        "--arms", default=",".join(ARM_NAMES), help="rows to train (the table needs all)"
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("extra", nargs="*", help="more train-qa flags (after --)")
    args = parser.parse_args()
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    chosen = args.arms.split(",")
    arms = [arm for arm, name in zip(ARMS, ARM_NAMES, strict=True) if name in chosen]
    if not args.report_only:
        folders = extract(args.world, args.out, args.supervised, {kind for _, kind, _ in arms})
        cells = [
            (task, kind, blind, seed) for task in tasks for _, kind, blind in arms for seed in seeds
        ]
        cells.sort(key=lambda c: c[0] != "vcr")  # the longest runs first

        def run_cell(cell: tuple[str, str, bool, int]) -> None:
            task, kind, blind, seed = cell
            features = [folders[kind] / f"{name}.h5" for name in TASK_FOLDERS[task]]
            run = args.out / "runs" / task / arm_dir(kind, blind) / f"seed{seed}"
            train(args.world, run, task, features, seed, blind, args.extra)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_cell, cells))
    text = report(args.world, args.out, tasks, seeds)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
