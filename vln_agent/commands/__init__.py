"""One module per ``clipvil`` subcommand: the navigation commands.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``configure(parser)``
(its arguments) and ``run(args) -> int`` (the exit status). Modules import only the
standard library and light project modules at the top; heavy imports (torch, open_clip)
happen inside ``run`` so that ``clipvil --help`` and the environment commands stay fast.

A command is registered as an entry point of the ``clipvil.commands`` group in
``pyproject.toml`` (``train-vln = "vln_agent.commands.train_vln"``); :mod:`vln_agent.cli`
collects every registered command, of every package. The package that holds a command
module names its heading in ``clipvil --help`` (:data:`GROUP`) and the order of its
commands under it (:data:`ORDER`).
"""

from __future__ import annotations

#: The heading of these commands in ``clipvil --help``.
GROUP = "navigation"
#: Their order under it: the data pipeline first, then training and evaluation. A
#: registered command missing here is listed after these, in name order.
ORDER = (
    "demo",
    "eval-r2r",
    "convert-features",
    "features",
    "map",
    "world",
    "train-vln",
    "eval-vln",
    "train-speaker",
    "sample-paths",
    "pretrain-clip",
    "pretrain-supervised",
    "zeroshot",
)
