"""How much of a feature file's variance a synthetic world's room and object labels explain.

For the captioned views of a synthetic world (``captions.json``), each view's labels (room
type one-hot, visible object categories multi-hot, a bias) are mapped to its feature [D] by
least squares fitted on the train houses; the score is R^2 over all D channels, on the train
houses and on held-out houses. A feature whose variance is mostly the room and the objects
(what the instructions talk about) scores high; one that also encodes much else (colours,
materials, layout) scores lower, whatever it can be linearly probed for. This is how the
numbers in the small CLIP's card were made::

    .venv/bin/python benchmarks/feature_semantics.py --data data/small \\
        clip=small-clip.h5 supervised=small-supervised.h5 random=small-random.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from envs.errors import DataError
from envs.features import open_features
from vln_agent.pretrain.data import (
    LabelSpace,
    ViewLabels,
    load_captioned_views,
    load_view_labels,
    split_scans,
)

FIT_SPLIT = "train"


def label_matrix(labels: list[ViewLabels], source: str) -> np.ndarray:
    """``[N, R + O + 1]``: room one-hot, object multi-hot and a bias column per view."""
    space = LabelSpace()
    rooms = np.eye(len(space.room_types), dtype=np.float64)[space.room_index(labels, source)]
    objects = space.object_multi_hot(labels, source).astype(np.float64)
    return np.concatenate([rooms, objects, np.ones((len(labels), 1))], axis=1)


def view_features(path: Path, views) -> np.ndarray:
    """``[N, D]`` the feature of each captioned view."""
    store = open_features(path)
    return np.stack([store.get(v.scan, v.viewpoint)[v.view_index] for v in views]).astype(
        np.float64
    )


def r_squared(targets: np.ndarray, predictions: np.ndarray) -> float:
    """1 - residual / total sum of squares, over all rows and channels."""
    total = ((targets - targets.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((targets - predictions) ** 2).sum() / total)


def label_r_squared(
    data_dir: Path, features: dict[str, Path], splits: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """``{name: {split: R^2}}`` of each feature file, the map fitted on the train houses."""
    inputs = {}
    for split in (FIT_SPLIT, *splits):
        views = load_captioned_views(data_dir, split_scans(data_dir, split))
        labels = label_matrix(load_view_labels(data_dir, views), str(data_dir / "scenes"))
        inputs[split] = (views, labels)
    scores: dict[str, dict[str, float]] = {}
    for name, path in features.items():
        train_views, train_labels = inputs[FIT_SPLIT]
        weights = np.linalg.lstsq(train_labels, view_features(path, train_views), rcond=None)[0]
        scores[name] = {}
        for split in (FIT_SPLIT, *splits):
            views, labels = inputs[split]
            scores[name][split] = r_squared(view_features(path, views), labels @ weights)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="synthetic world")
    parser.add_argument("--splits", default="val_unseen", help="held-out splits, comma-separated")
    parser.add_argument("features", nargs="+", help="NAME=FILE.h5")
    args = parser.parse_args(argv)
    features = {}
    for item in args.features:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"expected NAME=FILE, got {item!r}")
        features[name] = Path(path)
    splits = tuple(s for s in args.splits.split(",") if s)
    try:
        scores = label_r_squared(args.data, features, splits)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    columns = (FIT_SPLIT, *splits)
    print("| features | " + " | ".join(f"R^2 {s}" for s in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in scores.items():
        print(f"| {name} | " + " | ".join(f"{row[s]:.3f}" for s in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
