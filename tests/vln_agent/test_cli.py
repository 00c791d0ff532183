"""``clipvil``: commands collected from the ``clipvil.commands`` entry points, grouped in --help.

Other packages are simulated by a distribution written into a temporary folder on
``sys.path`` (a ``*.dist-info`` with ``entry_points.txt``, found by importlib.metadata as
an installed one would be).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from vln_agent import cli, commands
from vln_agent.cli import ENTRY_POINT_GROUP, EXIT_BAD_INPUT, collect_commands, main

#: The order of the hand-written command tuple the entry points replaced.
#: vqa_ve's commands, listed after navigation's under their own heading.
QA_ORDER = ("train-qa", "eval-qa", "protocol", "pretrain-vl", "eval-vqa", "eval-vcr")
FORMER_ORDER = (
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
#: Prefix of the fake packages' modules (dropped from sys.modules after each test).
FAKE = "fakeqa"

ANSWER_COMMAND = '''
"""A fake question-answering command."""
import argparse

from envs.errors import DataError

NAME = "{name}"
HELP = "Answer a question about an image ({name})."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--question", required=True)


def run(args: argparse.Namespace) -> int:
    if args.question == "bad":
        raise DataError("question.json", "not a question")
    print(f"{name}: {{args.question}}")
    return 0
'''


def write_distribution(
    root: Path, name: str, entries: dict[str, str], modules: dict[str, str]
) -> None:
    """An installed distribution ``name`` under ``root``: its modules and entry points."""
    for module, source in modules.items():
        path = root / (module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    info = root / f"{name}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n")
    lines = [f"{command} = {target}" for command, target in entries.items()]
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for fake distributions; their modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith(FAKE)]:
        del sys.modules[module]


@pytest.fixture
def qa_package(site: Path) -> Path:
    """A fake QA package registering two commands (ORDER not in name order) and a module
    without a package (no heading of its own)."""
    modules = {
        f"{FAKE}.__init__": "",
        f"{FAKE}.commands.__init__": 'GROUP = "fake answering"\nORDER = ("vqa", "ask")\n',
        f"{FAKE}.commands.ask": ANSWER_COMMAND.format(name="ask"),
        f"{FAKE}.commands.vqa": ANSWER_COMMAND.format(name="vqa"),
        f"{FAKE}_loner": ANSWER_COMMAND.format(name="loner"),
    }
    entries = {
        "ask": f"{FAKE}.commands.ask",
        "vqa": f"{FAKE}.commands.vqa",
        "loner": f"{FAKE}_loner",
    }
    write_distribution(site, f"{FAKE}-dist", entries, modules)
    return site


def help_sections(capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """``clipvil --help``'s command listing: heading -> command names, in order."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    blocks = capsys.readouterr().out.split("\n\n")
    after_options = [i for i, block in enumerate(blocks) if block.startswith("options:")][0] + 1
    sections: dict[str, list[str]] = {}
    for line in "\n".join(blocks[after_options:]).splitlines():  # the epilog
        if not line.startswith(" "):
            sections[line.rstrip(":")] = []
        elif not line.startswith("   "):  # "  name  help"; continuation lines go deeper
            next(reversed(sections.values())).append(line.split()[0])
    return sections


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_the_navigation_commands_in_their_former_order(capsys):
    assert help_sections(capsys) == {
        "navigation": list(FORMER_ORDER),
        "question answering": list(QA_ORDER),
    }
    assert commands.ORDER == FORMER_ORDER  # every registered one is placed explicitly


def test_every_registered_command_is_its_modules_command():
    found = collect_commands()
    expected = [*FORMER_ORDER, *QA_ORDER]
    assert [c.name for c in found] == [c.module.NAME for c in found] == expected
    assert {c.module.__name__.split(".")[0] for c in found} == {"vln_agent", "vqa_ve"}


def test_another_package_registers_its_commands_under_its_own_heading(qa_package, capsys):
    sections = help_sections(capsys)
    assert list(sections) == [
        "fake answering",
        "navigation",
        "other commands",
        "question answering",
    ]
    assert sections["navigation"] == list(FORMER_ORDER)
    assert sections["fake answering"] == ["vqa", "ask"]  # the package's ORDER
    assert sections["other commands"] == ["loner"]
    assert run_cli(["ask", "--question", "why"], capsys) == (0, "ask: why\n", "")
    status, _, err = run_cli(["vqa", "--question", "bad"], capsys)
    assert status == EXIT_BAD_INPUT and err == "error: question.json: not a question\n"


@pytest.mark.parametrize(
    ("entries", "modules", "problem"),
    [
        (
            {"gone": f"{FAKE}_gone"},
            {},
            f"{ENTRY_POINT_GROUP} entry point 'gone': cannot load {FAKE}_gone "
            f"(ModuleNotFoundError: No module named '{FAKE}_gone'); "
            "if a command moved, reinstall its package",
        ),
        (
            {"half": f"{FAKE}_half"},
            {f"{FAKE}_half": 'NAME = "half"\nHELP = "Half a command."\n'},
            f"{ENTRY_POINT_GROUP} entry point 'half': {FAKE}_half does not define configure, run",
        ),
        (
            {"alias": f"{FAKE}_vqa"},
            {f"{FAKE}_vqa": ANSWER_COMMAND.format(name="vqa")},
            f"{ENTRY_POINT_GROUP} entry point 'alias': {FAKE}_vqa is the command 'vqa'",
        ),
        (
            {"demo": f"{FAKE}_demo"},
            {f"{FAKE}_demo": ANSWER_COMMAND.format(name="demo")},
            f"{ENTRY_POINT_GROUP}: commands registered twice: demo",
        ),
    ],
    ids=["missing-module", "missing-attributes", "name-mismatch", "duplicate"],
)
def test_a_broken_registration_is_a_one_line_error(site, capsys, entries, modules, problem):
    write_distribution(site, f"{FAKE}-broken", entries, modules)
    for argv in (["--help"], ["demo", "--help"]):
        status, out, err = run_cli(argv, capsys)
        assert (status, out, err) == (EXIT_BAD_INPUT, "", f"error: {problem}\n")


def test_no_registered_commands_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    status, _, err = run_cli(["demo"], capsys)
    assert status == EXIT_BAD_INPUT and err == (
        f"error: {ENTRY_POINT_GROUP}: no commands registered: install clipvil (make install)\n"
    )


def test_long_help_wraps_under_its_column():
    found = collect_commands()
    listing = cli.command_listing(found, width=60)
    assert max(len(line) for line in listing.splitlines()) <= 60
    column = len("  pretrain-supervised  ")
    continuation = [line for line in listing.splitlines()[1:] if line.startswith("   ")]
    assert continuation and all(line[:column].isspace() for line in continuation)
