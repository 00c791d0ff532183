"""``clipvil pretrain-clip``: contrastive CLIP pretraining on a synthetic world's captions.

Its arguments and running are shared with ``clipvil pretrain-supervised``
(:func:`configure_pretraining`, :func:`run_pretraining`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "pretrain-clip"
HELP = (
    "Pretrain a small CLIP (open_clip's contrastive loss) on the image-caption pairs of a "
    "synthetic world's train houses; writes a clipvil encoder checkpoint."
)


def configure_pretraining(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """The arguments of both pretraining commands (``exclude``: settings without a flag)."""
    from vln_agent.pretrain.config import PretrainConfig
    from vln_agent.training.settings import add_run_flags, add_settings_flags

    parser.add_argument(
        "--data", type=Path, required=True, help="synthetic world (captions.json, scenes/, v1/)"
    )
    parser.add_argument("--out", type=Path, required=True, help="encoder checkpoint to write (.pt)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="folder of the rendered-view cache (default: view_cache/ beside --out)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="logs and resumable state (default: {out stem}_run/ beside --out)",
    )
    add_run_flags(parser)
    add_settings_flags(parser, PretrainConfig, exclude)


def run_pretraining(args: argparse.Namespace, kind: str) -> int:
    """Train with objective ``kind`` and print the final metrics."""
    from vln_agent.pretrain.config import PretrainConfig, load_pretrain_config
    from vln_agent.pretrain.train import Pretrainer
    from vln_agent.pretrain.zeroshot import summary_lines
    from vln_agent.training.settings import recipe_path, settings_overrides

    config = load_pretrain_config(
        recipe_path(args.config), **settings_overrides(args, PretrainConfig)
    )
    trainer = Pretrainer(
        kind,
        args.data,
        args.out,
        config,
        run_dir=args.run_dir,
        cache_dir=args.cache,
        resume=args.resume,
        progress=not args.no_progress,
    )
    metrics = trainer.train()
    assert metrics is not None
    summary = {k: v for k, v in metrics.items() if k not in ("eval", "history")}
    print(json.dumps(summary, indent=2))
    if metrics.get("eval"):
        print("\n".join(summary_lines(metrics["eval"])))
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    configure_pretraining(parser)


def run(args: argparse.Namespace) -> int:
    return run_pretraining(args, "clip")
