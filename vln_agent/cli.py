"""The ``clipvil`` command line: ``clipvil <command> [options]``.

Bad input (a missing file, malformed JSON, wrong feature sizes, ...) is reported as one
line ``error: <file>: <problem>`` on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from envs.errors import DataError
from vln_agent.commands import (
    convert_features,
    demo,
    eval_r2r,
    eval_vln,
    features,
    pretrain_clip,
    pretrain_supervised,
    sample_paths,
    train_speaker,
    train_vln,
    world,
    zeroshot,
)
from vln_agent.commands import map as map_command

#: The subcommands, in the order ``clipvil --help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (
    demo,
    eval_r2r,
    convert_features,
    features,
    map_command,
    world,
    train_vln,
    eval_vln,
    train_speaker,
    sample_paths,
    pretrain_clip,
    pretrain_supervised,
    zeroshot,
)

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipvil",
        description="CLIP for vision-and-language navigation and question answering.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
