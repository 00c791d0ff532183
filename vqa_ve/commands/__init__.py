"""One module per ``clipvil`` question-answering subcommand (VQA, SNLI-VE, VCR).

A command module here follows :mod:`vln_agent.commands`' contract (``NAME``,
``HELP``, ``configure(parser)``, ``run(args) -> int``, heavy imports inside ``run``) and is
registered in ``pyproject.toml`` under ``[project.entry-points."clipvil.commands"]``; it is
then listed under :data:`GROUP` in ``clipvil --help``.
"""

from __future__ import annotations

#: The heading of these commands in ``clipvil --help``.
GROUP = "question answering"
#: Their order under it (a registered command missing here follows, in name order).
ORDER: tuple[str, ...] = (
    "train-qa",
    "eval-qa",
    "protocol",
    "pretrain-vl",
    "eval-vqa",
    "eval-vcr",
)
