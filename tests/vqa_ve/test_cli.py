"""The question-answering commands are registered with ``clipvil`` (entry points) and listed
under their own heading; bad input through ``clipvil`` is one line and exit status 2."""

from __future__ import annotations

import pytest

from vln_agent.cli import EXIT_BAD_INPUT, collect_commands, main


def test_qa_commands_are_listed_under_question_answering():
    groups = {command.name: command.group for command in collect_commands()}
    assert groups["eval-vqa"] == groups["eval-vcr"] == "question answering"
    assert groups["train-vln"] == "navigation"


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["eval-vqa", "--questions", "{d}/q.json", "--annotations", "{d}/a.json",
          "--results", "{d}/r.json"], "q.json"),
        (["eval-vcr", "--annotations", "{d}/val.jsonl", "--predictions", "{d}/p.csv"],
         "val.jsonl"),
    ],
)  # fmt: skip
def test_missing_input_through_clipvil_is_one_line_and_exit_2(tmp_path, capsys, argv, missing):
    status = main([arg.format(d=tmp_path) for arg in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == EXIT_BAD_INPUT
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / missing}: "), lines
