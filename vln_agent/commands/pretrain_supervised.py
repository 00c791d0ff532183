"""``clipvil pretrain-supervised``: the in-domain supervised baseline encoder.

The same architecture as ``clipvil pretrain-clip`` trained on the world's labels (room
type + visible objects) instead of captions; see :mod:`vln_agent.pretrain.objectives`.
"""

from __future__ import annotations

import argparse

from vln_agent.commands.pretrain_clip import configure_pretraining, run_pretraining

NAME = "pretrain-supervised"
HELP = (
    "Train the in-domain supervised baseline encoder (room type + visible objects, linear "
    "heads) on the views of a synthetic world's train houses."
)


def configure(parser: argparse.ArgumentParser) -> None:
    configure_pretraining(parser, exclude=("category_captions",))


def run(args: argparse.Namespace) -> int:
    return run_pretraining(args, "supervised")
