"""``clipvil eval-vcr``: score VCR predictions (the leaderboard CSV) by Q->A, QA->R and Q->AR.

Example::

    clipvil eval-vcr --annotations vcr1/val.jsonl --predictions val.csv --out metrics.json

Every question of the annotations needs exactly one row in the predictions; the metrics
(percent) are printed and, with ``--out``, written as JSON (atomically).
"""

from __future__ import annotations

import argparse

NAME = "eval-vcr"
HELP = "Score VCR predictions (leaderboard CSV) by Q->A, QA->R and Q->AR accuracy."
#: How the printed table names each metric.
LABELS = {"q2a": "Q->A", "qa2r": "QA->R", "q2ar": "Q->AR"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--annotations",
        required=True,
        metavar="FILE",
        help="labelled VCR annotations, e.g. vcr1/val.jsonl (the release format)",
    )
    parser.add_argument(
        "--predictions",
        required=True,
        metavar="FILE",
        help="leaderboard CSV: annot_id, answer_0..3, rationale_conditioned_on_a{0..3}_{0..3}",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the metrics as JSON (default: print them only)"
    )


def format_metrics(metrics: dict[str, float], count: int) -> str:
    """The printed table: one metric a line, in percent."""
    lines = [f"{LABELS[key]:<6} {metrics[key]:6.2f}" for key in LABELS]
    return "\n".join([f"VCR, {count} questions", *lines])


def run(args: argparse.Namespace) -> int:
    from envs.fileio import write_json
    from vqa_ve.data.vcr import load_vcr
    from vqa_ve.metrics.vcr import read_vcr_predictions, vcr_scores

    items = load_vcr(args.annotations, require_labels=True)
    predictions = read_vcr_predictions(args.predictions, [item.annot_id for item in items])
    metrics = vcr_scores(items, predictions)
    if args.out:
        write_json(args.out, metrics)
    print(format_metrics(metrics, len(items)))
    return 0
