"""``clipvil demo``: the main job on the embedded default, with a printed results table.

1. builds the ``small`` synthetic world (or reuses it: a finished build is never redone);
2. extracts its panorama features with the shipped small CLIP (``checkpoints/``), resuming a
   killed extraction and reusing a finished one made with the same weights;
3. evaluates the shipped follower on val_seen and val_unseen with the official metrics,
   beside two no-learning references on the same splits (shortest-path oracle, random walk),
   and writes the submissions, metrics and episode maps;
4. scores the same references on the real R2R splits when present (``--real``, else
   :func:`default_real_data`), to show that the same evaluator runs on the real graphs;
5. evaluates the shipped QA models (VQA, SNLI-VE, VCR) on the world's QA val split and its
   lighting-shifted copy, beside a blind baseline (:mod:`vqa_ve.demo`: grid features of the
   same CLIP, extracted once per image folder; prediction files and metrics under
   ``OUT/qa/<task>/<split>/``); a missing QA checkpoint is said in one line and skipped;
6. prints the commands that train an agent from scratch.

The QA step is the one place where ``vln_agent`` reaches into ``vqa_ve``: the demo is the
application on top of both halves, and imports it inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vqa_ve.demo import QARow

NAME = "demo"
HELP = (
    "Build the small synthetic world, extract CLIP features, evaluate the shipped agent "
    "on val_seen and val_unseen and the shipped QA models on the QA val splits, and print "
    "the metrics."
)

DEFAULT_SPLITS = ("val_seen", "val_unseen")
DEFAULT_WORLD = Path("data/small")
DEFAULT_OUT = Path("runs/demo")
DEFAULT_WORKERS = 2
#: The world the shipped checkpoints were trained on.
DEMO_PRESET = "small"
DEMO_SEED = 0
#: Shipped checkpoints (see checkpoints/*.md for their cards).
ENCODER_CHECKPOINT = "clipvil-small-synthetic.pt"
ENCODER_MODEL = "clipvil-small"
FOLLOWER_CHECKPOINT = "follower-small-clip.pt"
FEATURES_NAME = "clipvil-small-clip.h5"
#: The world's QA folder (``clipvil world`` writes it unless ``--no-qa``) and where the QA
#: predictions and metrics go under ``--out``.
QA_FOLDER = "qa"
DEMO_MAPS = 4
#: Names the real R2R data root (``connectivity/``, ``R2R_*.json``); the tests read it too.
REAL_DATA_ENV = "CLIPVIL_R2R_REAL"
#: The application name of the per-user data folder (platformdirs' ``user_data_dir``).
APP_NAME = "clipvil"
#: The real data's folder name, beside a source checkout (``../shared/``) and in the
#: per-user data folder.
REAL_DATA_FOLDER = "r2r_real"
#: A file at the root of a source checkout (absent from an installed package's parents).
CHECKOUT_MARKER = "pyproject.toml"
#: Where the real data is looked for, in order (``--real`` and ``--help`` say so).
REAL_DATA_ORDER = (
    f"${REAL_DATA_ENV}, else ../shared/{REAL_DATA_FOLDER} beside a source checkout when "
    f"present, else {REAL_DATA_FOLDER}/ in the user data folder"
)


def default_real_data(module_file: str | os.PathLike[str] = __file__) -> Path:
    """Where ``clipvil demo`` looks for the real R2R data when ``--real`` is not given.

    1. ``$CLIPVIL_R2R_REAL`` when set;
    2. ``../shared/r2r_real`` beside a source checkout (the folder holding
       ``pyproject.toml`` above ``module_file``, this module), when that folder exists;
    3. ``r2r_real/`` in the user's data folder (platformdirs' ``user_data_dir("clipvil")``:
       ``~/.local/share/clipvil/r2r_real`` on Linux), which is where an installed clipvil
       looks: put (or link) the data there.
    """
    override = os.environ.get(REAL_DATA_ENV)
    if override:
        return Path(override)
    checkout = Path(module_file).resolve().parents[2]
    beside = checkout.parent / "shared" / REAL_DATA_FOLDER
    if (checkout / CHECKOUT_MARKER).is_file() and beside.is_dir():
        return beside
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False)) / REAL_DATA_FOLDER


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--world",
        type=Path,
        default=DEFAULT_WORLD,
        help=f"where the small world lives or goes (default: {DEFAULT_WORLD})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"submissions, metrics and episode maps (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        default=list(DEFAULT_SPLITS),
        metavar="SPLIT",
        help=f"splits to evaluate on (default: {' '.join(DEFAULT_SPLITS)})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"processes/threads for the world and the features (default: {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=None,
        help=f"real R2R data root for the reference agents (default: {REAL_DATA_ORDER})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random walk (default: 0)")
    parser.add_argument(
        "--preset",
        default=DEMO_PRESET,
        help=f"world preset; the shipped agent knows {DEMO_PRESET!r} (default: {DEMO_PRESET})",
    )
    parser.add_argument(
        "--encoder-checkpoint",
        type=Path,
        default=None,
        help=f"CLIP weights for the features (default: shipped {ENCODER_CHECKPOINT})",
    )
    parser.add_argument(
        "--encoder-model",
        default=ENCODER_MODEL,
        help=f"its open_clip or clipvil model name (default: {ENCODER_MODEL})",
    )
    parser.add_argument(
        "--follower-checkpoint",
        type=Path,
        default=None,
        help=f"the agent to evaluate (default: shipped {FOLLOWER_CHECKPOINT})",
    )
    parser.add_argument(
        "--qa-checkpoints",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the QA models to evaluate, qa-{vqa,snli-ve,vcr}-small-clip.pt; a "
        "missing one is skipped (default: the shipped checkpoints)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from envs.errors import DataError
    from envs.synthetic.presets import PRESETS
    from envs.synthetic.writer import build_world

    encoder = args.encoder_checkpoint or shipped(ENCODER_CHECKPOINT)
    follower = args.follower_checkpoint or shipped(FOLLOWER_CHECKPOINT)
    for path in (encoder, follower):
        if not path.is_file():
            raise DataError(path, "no such checkpoint file")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    step = time.perf_counter()
    print(f"[1/5] synthetic world ({args.preset}, seed {DEMO_SEED}) in {args.world}")
    with tqdm(
        total=PRESETS[args.preset].total_houses, desc="houses", unit="house", delay=1.0
    ) as bar:
        build_world(args.world, args.preset, DEMO_SEED, args.workers, on_house_done=bar.update)
    timings["world"] = time.perf_counter() - step

    step = time.perf_counter()
    features = args.world / "features" / FEATURES_NAME
    print(f"[2/5] CLIP features -> {features}")
    ensure_features(args.world, features, encoder, args.encoder_model, args.workers)
    timings["features"] = time.perf_counter() - step

    step = time.perf_counter()
    print(f"[3/5] shipped follower on {', '.join(args.splits)} -> {args.out}")
    rows = evaluate_world(follower, args.world, features, args.splits, args.out, args.seed)
    timings["evaluation"] = time.perf_counter() - step

    step = time.perf_counter()
    real = args.real if args.real is not None else default_real_data()
    real_rows = []
    if (real / "connectivity").is_dir():
        print(f"[4/5] the same evaluator on the real R2R splits in {real}")
        real_rows = reference_rows(real, args.splits, args.seed)
    else:
        print(f"[4/5] no real R2R data at {real} (--real or ${REAL_DATA_ENV} names it): skipped")
    timings["real data"] = time.perf_counter() - step

    step = time.perf_counter()
    qa_dir = args.world / QA_FOLDER
    qa_rows: list[QARow] = []
    if qa_dir.is_dir():
        print(f"[5/5] shipped QA models on {qa_dir} (val, val_shift) -> {args.out / QA_FOLDER}")
        qa_rows = evaluate_qa(args, qa_dir, encoder)
    else:
        print(f"[5/5] no QA data at {qa_dir} (a world built with --no-qa): skipped")
    timings["QA"] = time.perf_counter() - step

    print()
    print(f"synthetic world: {args.world}")
    print(format_results(rows))
    if real_rows:
        print()
        print(f"real R2R data: {real}")
        print(format_results(real_rows))
    if qa_rows:
        from vqa_ve.demo import BLIND_NOTE, format_qa_results

        print()
        print(f"question answering: {qa_dir}")
        print(format_qa_results(qa_rows))
        print(BLIND_NOTE)
    print()
    print(f"maps, submissions and metrics: {args.out}/<split>/")
    if qa_rows:
        print(f"QA predictions and metrics: {args.out / QA_FOLDER}/<task>/<split>/")
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    print(f"time: {time.perf_counter() - started:.0f} s ({spent})")
    print()
    print(how_to_train(args.world, features, args.encoder_model))
    return 0


def shipped(name: str) -> Path:
    """A checkpoint shipped in ``checkpoints/``; a one-line error when it is missing."""
    from checkpoints import checkpoint_path

    return checkpoint_path(name)


def evaluate_qa(args: argparse.Namespace, qa_dir: Path, encoder: Path) -> list[QARow]:
    """The QA rows of :func:`vqa_ve.demo.evaluate_shipped_qa` (features beside the
    navigation features, made with the same CLIP)."""
    from checkpoints import CHECKPOINT_DIR
    from vqa_ve.demo import evaluate_shipped_qa

    return evaluate_shipped_qa(
        qa_dir,
        args.world / "features",
        args.qa_checkpoints or CHECKPOINT_DIR,
        args.out / QA_FOLDER,
        encoder,
        args.encoder_model,
        args.workers,
    )


def ensure_features(
    world: Path, features: Path, encoder_path: Path, model: str, workers: int
) -> None:
    """Extract the world's features with the shipped CLIP, unless a finished file made with
    the same weights is already there (a killed run is resumed)."""
    import h5py

    from envs.fileio import file_sha256
    from vln_agent.encoders import create_encoder_of_kind
    from vln_agent.extract import extract_features

    digest = file_sha256(encoder_path)
    if features.is_file():
        with h5py.File(features, "r") as f:
            if f.attrs.get("pretrained_sha256") == digest:
                print(f"      reusing {features} (made with the shipped encoder)")
                return
        features.unlink()
    encoder, attrs = create_encoder_of_kind("clip", model, str(encoder_path))
    attrs.update(pretrained=encoder_path.name, pretrained_sha256=digest)
    extract_features(world, encoder, features, workers=workers, dtype="float16", attrs=attrs)


def evaluate_world(
    follower: Path, world: Path, features: Path, splits: list[str], out: Path, seed: int
) -> list[tuple[str, str, dict[str, float], float]]:
    """The shipped follower and the two references on each split of the synthetic world."""
    from vln_agent.evaluate_run import evaluate_checkpoint

    rows = []
    for split in splits:
        start = time.perf_counter()
        summary = evaluate_checkpoint(follower, world, features, split, out / split, maps=DEMO_MAPS)
        if summary is not None:
            rows.append((split, "CLIP follower", summary, time.perf_counter() - start))
        rows.extend(reference_rows(world, [split], seed))
    return rows


def reference_rows(
    data: Path, splits: list[str], seed: int
) -> list[tuple[str, str, dict[str, float], float]]:
    """Shortest-path oracle and random walk, scored by the official metrics."""
    from envs.episodes import load_episodes
    from envs.evaluate import evaluate, shortest_path_predictions
    from envs.graph import NavGraphs
    from vln_agent.baselines import random_walk_predictions

    graphs = NavGraphs(data)
    rows = []
    for split in splits:
        episodes = load_episodes(data, split)
        agents = {
            "shortest-path oracle": lambda eps=episodes: shortest_path_predictions(graphs, eps),
            "random walk": lambda eps=episodes: random_walk_predictions(graphs, eps, seed=seed),
        }
        for agent, predict in agents.items():
            start = time.perf_counter()
            predictions = predict()
            summary = evaluate(graphs, episodes, predictions, source=f"{agent} on {split}").summary
            rows.append((split, agent, summary, time.perf_counter() - start))
    return rows


def how_to_train(world: Path, features: Path, model: str) -> str:
    """The commands that make the shipped checkpoints from scratch."""
    return "\n".join(
        [
            "train your own (README.md, section Training):",
            f"  clipvil pretrain-clip --data {world} --out runs/clip.pt "
            "--config clip-small-pretrain",
            f"  clipvil features --data {world} --model {model} --pretrained runs/clip.pt "
            "--out runs/clip.h5 --float16",
            f"  clipvil sample-paths --data {world} --per-scan 1000 --instructions 3 "
            "--out runs/aug.json",
            f"  clipvil train-vln --data {world} --features runs/clip.h5 --aug-paths runs/aug.json "
            "--out runs/warm --config follower-stage1",
            f"  clipvil train-vln --data {world} --features runs/clip.h5 --aug-paths runs/aug.json "
            "--out runs/follower --config follower-stage2 --resume-from runs/warm/best.pt",
            f"  clipvil eval-vln --checkpoint runs/follower/best.pt --data {world} "
            "--features runs/clip.h5 --split val_unseen --out runs/eval",
            f"(or with the shipped encoder's features: --features {features})",
        ]
    )


def format_results(rows: list[tuple[str, str, dict[str, float], float]]) -> str:
    """One line per (split, agent): TL/NE in metres, rates in percent."""
    header = (
        f"{'split':<11} {'agent':<21} {'instr':>6} {'TL':>6} {'NE':>6} {'SR':>6} {'OSR':>6} "
        f"{'SPL':>6} {'nDTW':>6} {'SDTW':>6} {'CLS':>6} {'sec':>5}"
    )
    lines = [header, "-" * len(header)]
    for split, agent, s, seconds in rows:
        rates = " ".join(f"{100 * s[k]:6.1f}" for k in ("sr", "osr", "spl", "ndtw", "sdtw", "cls"))
        lines.append(
            f"{split:<11} {agent:<21} {int(s['num_instructions']):>6} {s['tl']:6.2f} "
            f"{s['ne']:6.2f} {rates} {seconds:5.1f}"
        )
    return "\n".join(lines)
