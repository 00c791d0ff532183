"""Every option of every registered ``clipvil`` command has help text that shows its default.

The CLI configures only the chosen command's options, so each command's parser is built
here on its own, with its module's ``configure``, for every registered command.
"""

from __future__ import annotations

import argparse
import re
from pathlib import PurePath

import pytest

from vln_agent.cli import Command, collect_commands

#: Defaults that need not be shown: "not given" and an unset switch (by identity: 0 is shown).
SILENT_DEFAULTS = (None, False)
#: The text that states a default: ``(default: X)``, ``default X``, ``default: X; ...``.
DEFAULT_PATTERN = re.compile(r"default[:\s]", re.IGNORECASE)
#: A trailing ``(default: ...)`` (what the settings flags append to a field's comment).
DEFAULT_SUFFIX = re.compile(r"\s*\(default:[^)]*\)\s*$")


def option_parser(command: Command) -> argparse.ArgumentParser:
    """``command``'s options on a parser of their own, as ``clipvil COMMAND`` builds them."""
    parser = argparse.ArgumentParser(prog=f"clipvil {command.name}")
    command.module.configure(parser)
    return parser


def shown_forms(default: object) -> set[str]:
    """How a help text may spell ``default``: as is, or a list joined by spaces / commas."""
    if isinstance(default, list | tuple):
        items = [str(item) for item in default]
        return {" ".join(items), ",".join(items), ", ".join(items)}
    if isinstance(default, PurePath):
        return {str(default), default.as_posix()}
    return {str(default)}


def help_problems(parser: argparse.ArgumentParser) -> list[str]:
    """One line per option without help text, or with a default its help does not show."""
    formatter = parser._get_formatter()
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue  # -h, and hidden options (not listed in --help at all)
        name = "/".join(action.option_strings) or action.dest
        text = formatter._expand_help(action) if action.help else ""  # %(default)s expanded
        if not DEFAULT_SUFFIX.sub("", text).strip():
            problems.append(f"{name}: no help text")
            continue
        default = action.default
        if any(default is silent for silent in SILENT_DEFAULTS) or default == argparse.SUPPRESS:
            continue
        if not (
            DEFAULT_PATTERN.search(text) and any(form in text for form in shown_forms(default))
        ):
            problems.append(f"{name}: help does not show the default {default!r}: {text!r}")
    return problems


COMMANDS = collect_commands()


def test_every_command_is_walked() -> None:
    names = {command.name for command in COMMANDS}
    assert {"eval-vln", "train-vln", "features", "world", "demo"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=[command.name for command in COMMANDS])
def test_every_option_has_help_showing_its_default(command: Command) -> None:
    parser = option_parser(command)
    assert len(parser._actions) > 1, f"{command.name} has no options"
    problems = help_problems(parser)
    assert not problems, f"clipvil {command.name}:\n" + "\n".join(problems)


def test_the_check_catches_missing_help_and_hidden_defaults() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare")
    parser.add_argument("--quiet-default", type=int, default=3, help="a number")
    parser.add_argument("--only-default", type=int, default=3, help="(default: 3)")
    parser.add_argument("--shown", type=int, default=3, help="a number (default: 3)")
    parser.add_argument("--templated", type=int, default=3, help="a number (default: %(default)s)")
    parser.add_argument("--zero", type=int, default=0, help="a count")
    parser.add_argument("--switch", action="store_true", help="a switch")
    parser.add_argument("--hidden", default=5, help=argparse.SUPPRESS)
    assert help_problems(parser) == [
        "--bare: no help text",
        "--quiet-default: help does not show the default 3: 'a number'",
        "--only-default: no help text",
        "--zero: help does not show the default 0: 'a count'",
    ]
