"""``clipvil world``: write the synthetic Matterport-style world (the offline default dataset)."""

from __future__ import annotations

import argparse

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


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from envs.synthetic.presets import PRESETS
    from envs.synthetic.writer import build_world

    total = PRESETS[args.preset].total_houses
    # delay: nothing is drawn when the world is reused or the arguments are refused at once
    with tqdm(total=total, desc="houses", unit="house", delay=1.0) as bar:
        manifest = build_world(
            args.out, args.preset, args.seed, args.workers, on_house_done=bar.update
        )
        built = bar.n
    counts = manifest["counts"]
    print(
        f"{args.out}: {counts['scans']} houses, {counts['viewpoints']} viewpoints, "
        f"{sum(counts['paths'].values())} paths, {counts['images']} images, "
        f"{counts['captions']} captioned views" + ("" if built else " (existing world reused)")
    )
    return 0
