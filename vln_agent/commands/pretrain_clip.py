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


def configure_pretraining(parser: argparse.ArgumentParser) -> None:
    """The arguments of both pretraining commands."""
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
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/latest.pt")
    parser.add_argument("--config", type=Path, help="JSON file of settings (PretrainConfig)")
    parser.add_argument("--model", help="clipvil / open_clip model (default: clipvil-small)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, dest="learning_rate", help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--threads", type=int, help="torch threads (default: 1)")
    parser.add_argument(
        "--eval-split", help="held-out split scored after every epoch ('' for none)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run_pretraining(args: argparse.Namespace, kind: str) -> int:
    """Train with objective ``kind`` and print the final metrics."""
    from vln_agent.pretrain.config import load_pretrain_config
    from vln_agent.pretrain.train import Pretrainer
    from vln_agent.pretrain.zeroshot import summary_lines

    config = load_pretrain_config(
        args.config,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        eval_split=args.eval_split,
        device=args.device,
        category_captions=getattr(args, "category_captions", None),
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
    parser.add_argument(
        "--category-captions",
        type=int,
        help="short captions per view naming only its room or one object (default: 0)",
    )


def run(args: argparse.Namespace) -> int:
    return run_pretraining(args, "clip")
