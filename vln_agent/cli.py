"""The ``clipvil`` command line: ``clipvil <command> [options]``.

The commands are not listed here: every package registers its own as entry points of the
``clipvil.commands`` group (``pyproject.toml``), one command module each (the contract is
in :mod:`vln_agent.commands`), and :func:`collect_commands` finds them with
:mod:`importlib.metadata`. So ``vqa_ve`` adds its commands without ``vln_agent``
importing it. ``clipvil --help`` lists them under the heading their package names
(``GROUP`` in the command module's package, e.g. ``"navigation"``), headings in
alphabetical order, commands in their package's ``ORDER``.

Bad input (a missing file, malformed JSON, wrong feature sizes, ...) is reported as one
line ``error: <file>: <problem>`` on stderr with exit status 2; so is an output that cannot
be written (:class:`~envs.errors.OutputError`, a ``DataError`` raised by the atomic writer of
:mod:`envs.fileio`: a path under a regular file, permission denied, a full or read-only disk;
nothing is left at the output path), and a registered command that cannot be loaded (a
stale install after a module moved: reinstall the package).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import textwrap
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from envs.errors import DataError

#: The entry-point group packages register their commands in.
ENTRY_POINT_GROUP = "clipvil.commands"
#: What a command module must define.
COMMAND_ATTRIBUTES = ("NAME", "HELP", "configure", "run")
#: The heading of commands whose package names no ``GROUP``.
DEFAULT_GROUP = "other commands"
#: Narrowest column of help text in the command listing.
MIN_HELP_WIDTH = 20
DESCRIPTION = "CLIP for vision-and-language navigation and question answering."
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Command:
    """A registered subcommand and where ``clipvil --help`` lists it."""

    #: The subcommand, the entry point's name (and the module's ``NAME``).
    name: str
    #: The heading it is listed under (its package's ``GROUP``).
    group: str
    #: Its position in its package's ``ORDER`` (``len(ORDER)`` when not listed there).
    rank: int
    #: The command module: ``NAME``, ``HELP``, ``configure(parser)``, ``run(args)``.
    module: ModuleType


def collect_commands() -> list[Command]:
    """Every command registered in :data:`ENTRY_POINT_GROUP`, in ``--help`` order.

    Raises:
        DataError: No command registered (the project is not installed), a command
            registered twice, or an entry point that cannot be loaded (one line each).
    """
    commands = [load_command(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if not commands:
        raise DataError(ENTRY_POINT_GROUP, "no commands registered: install clipvil (make install)")
    names = [command.name for command in commands]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(ENTRY_POINT_GROUP, f"commands registered twice: {', '.join(twice)}")
    return sorted(commands, key=lambda c: (c.group, c.rank, c.name))


def load_command(entry_point: EntryPoint) -> Command:
    """Import one registered command module and check it (one-line DataError if broken)."""
    source = f"{ENTRY_POINT_GROUP} entry point {entry_point.name!r}"
    try:
        module = entry_point.load()
    except Exception as err:  # a command module's import can fail in any way
        raise DataError(
            source,
            f"cannot load {entry_point.value} ({type(err).__name__}: {err}); "
            "if a command moved, reinstall its package",
        ) from None
    missing = [name for name in COMMAND_ATTRIBUTES if not hasattr(module, name)]
    if missing:
        raise DataError(source, f"{entry_point.value} does not define {', '.join(missing)}")
    if module.NAME != entry_point.name:
        raise DataError(source, f"{entry_point.value} is the command {module.NAME!r}")
    package = sys.modules.get(module.__package__ or "")  # imported with the module
    order = tuple(getattr(package, "ORDER", ()))
    return Command(
        name=entry_point.name,
        group=str(getattr(package, "GROUP", DEFAULT_GROUP)),
        rank=order.index(entry_point.name) if entry_point.name in order else len(order),
        module=module,
    )


def command_listing(commands: list[Command], width: int | None = None) -> str:
    """The commands under their group headings, help text wrapped as argparse does."""
    if width is None:
        width = shutil.get_terminal_size().columns - 2  # argparse's own help width
    column = max(len(command.name) for command in commands) + 4
    help_width = max(width - column, MIN_HELP_WIDTH)
    sections = []
    for group, members in itertools.groupby(commands, key=lambda c: c.group):
        lines = [f"{group}:"]
        for command in members:
            first, *rest = textwrap.wrap(command.module.HELP, help_width) or [""]
            lines.append(f"  {command.name:<{column - 2}}{first}")
            lines += [" " * column + line for line in rest]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def build_parser(
    commands: list[Command] | None = None, argv: list[str] | None = None
) -> argparse.ArgumentParser:
    """The ``clipvil`` parser with a subparser per command (default: the registered ones).

    Only the command that ``argv`` (default: ``sys.argv[1:]``) names gets its options:
    the training commands build theirs from settings dataclasses that live beside torch
    models, so ``clipvil --help`` and the light commands stay free of torch.
    """
    commands = collect_commands() if commands is None else commands
    words = sys.argv[1:] if argv is None else argv
    chosen = next((word for word in words if not word.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="clipvil",
        description=DESCRIPTION,
        epilog=command_listing(commands),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="one of the commands below ('clipvil COMMAND --help' shows its options)",
    )
    for command in commands:
        sub = subparsers.add_parser(command.name, description=command.module.HELP)
        if command.name == chosen:
            command.module.configure(sub)
        sub.set_defaults(_run=command.module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (2 on bad input or an unwritable output)."""
    try:
        args = build_parser(argv=argv).parse_args(argv)
        return int(args._run(args) or 0)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
