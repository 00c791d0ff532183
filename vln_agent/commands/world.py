"""``clipvil world``: write the synthetic Matterport-style world (the offline default dataset)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

NAME = "world"
HELP = "generate the synthetic R2R world (houses, skyboxes, paths, captions) into a data root"


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    from envs.synthetic.presets import PRESET_NAMES

    parser.add_argument(
        "--out", required=True, help="data root to write (reused when already built)"
    )
    parser.add_argument(
        "--preset", choices=PRESET_NAMES, default="small", help="world size (default: small)"
    )
    parser.add_argument("--seed", type=_non_negative, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--workers", type=_positive, default=None, help="render processes (default: 2)"
    )
    parser.add_argument(
        "--no-qa",
        action="store_true",
        help="skip DIR/qa/ (VQA v2, SNLI-VE and VCR about the world's views)",
    )


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the world; a world this run started and could not finish is removed."""
    from envs.fileio import make_output_dir

    out = Path(args.out)
    existed = out.exists()
    was_empty = not existed or (out.is_dir() and not any(out.iterdir()))
    make_output_dir(out)  # one-line OutputError for /proc/x, a path under a file, ...
    try:
        manifest, built = _build(args)
    except BaseException:
        if was_empty:  # nothing half-written is left where there was nothing
            _remove_partial(out, keep_folder=existed)
        raise
    counts = manifest["counts"]
    print(
        f"{args.out}: {counts['scans']} houses, {counts['viewpoints']} viewpoints, "
        f"{sum(counts['paths'].values())} paths, {counts['images']} images, "
        f"{counts['captions']} captioned views" + ("" if built else " (existing world reused)")
    )
    return 0


def _remove_partial(out: Path, keep_folder: bool) -> None:
    """Remove what a failed build wrote into ``out`` (and ``out`` unless ``keep_folder``)."""
    if not keep_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _build(args: argparse.Namespace) -> tuple[dict, int]:
    """The world's manifest and how many houses were built (0: an existing world reused)."""
    from tqdm import tqdm

    from envs.synthetic.presets import PRESETS
    from envs.synthetic.writer import build_world

    total = PRESETS[args.preset].total_houses
    # delay: nothing is drawn when the world is reused or the arguments are refused at once
    with tqdm(total=total, desc="houses", unit="house", delay=1.0) as bar:
        manifest = build_world(
            args.out,
            args.preset,
            args.seed,
            args.workers,
            on_house_done=bar.update,
            qa=not args.no_qa,
        )
        return manifest, bar.n
