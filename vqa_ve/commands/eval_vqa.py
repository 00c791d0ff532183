"""``clipvil eval-vqa``: score a VQA results file with the official VQA accuracy.

Example::

    clipvil eval-vqa --questions v2_OpenEnded_mscoco_val2014_questions.json \\
        --annotations v2_mscoco_val2014_annotations.json --results results.json --out m.json

The results file (``[{"question_id", "answer"}]``) must answer every question of the split
exactly once. The metrics JSON is the official ``accuracy`` dict (``overall``,
``perQuestionType``, ``perAnswerType``, 0-100, 2 decimals), written atomically and only
when all inputs are valid; the table printed lists the overall and per-answer-type scores.
"""

from __future__ import annotations

import argparse

NAME = "eval-vqa"
HELP = "Score VQA results ([{question_id, answer}]) with the official VQA accuracy (vqaEval.py)."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--questions",
        required=True,
        metavar="FILE",
        help="official questions JSON of the split (required; no default)",
    )
    parser.add_argument(
        "--annotations",
        required=True,
        metavar="FILE",
        help="official annotations JSON of the same split (required; no default)",
    )
    parser.add_argument(
        "--results",
        required=True,
        metavar="FILE",
        help='results JSON [{"question_id": ..., "answer": ...}] (required; no default)',
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the metrics JSON here (default: print only)",
    )


def format_table(accuracy: dict, num_questions: int) -> str:
    """Questions scored, overall accuracy, then each answer type (0-100, 2 decimals)."""
    rows = [("questions", str(num_questions)), ("overall", f"{accuracy['overall']:.2f}")]
    rows += [(name, f"{value:.2f}") for name, value in sorted(accuracy["perAnswerType"].items())]
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    return "\n".join(f"{label:<{label_width}}  {value:>{value_width}}" for label, value in rows)


def run(args: argparse.Namespace) -> int:
    from envs.errors import DataError
    from envs.fileio import write_json
    from vqa_ve.data.vqa import load_vqa, read_vqa_results
    from vqa_ve.metrics.vqa import evaluate_vqa

    examples = load_vqa(args.questions, args.annotations)
    if not examples:
        raise DataError(args.questions, "no questions to score")
    predictions = read_vqa_results(args.results, [e.question.question_id for e in examples])
    annotations = [e.annotation for e in examples if e.annotation is not None]
    accuracy = evaluate_vqa(annotations, predictions)
    if args.out:
        write_json(args.out, accuracy)
    print(format_table(accuracy, len(annotations)))
    return 0
