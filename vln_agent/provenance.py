"""Checkpoints and the features they were trained on.

Every checkpoint trained on panorama features (the follower, the speaker) records in its
``extra`` the file it was trained on, its width and its encoder (:func:`features_extra`).
Whatever reads features for a checkpoint again (``clipvil eval-vln``, ``train-vln
--resume`` / ``--resume-from``, back-translation with a speaker) checks them against that
record with :func:`check_checkpoint_features`; the rules themselves are
:func:`envs.features.provenance.check_provenance`'s. Checkpoints made before the record
existed (``extra`` holds only ``features`` and ``feature_size``) are checked by width.

The two command-line flags that loosen the checks are :func:`add_feature_flags`'s:
``--feature-columns N`` (read the first N columns of a wider file) and
``--allow-other-features`` (use another encoder's features of the same width, with a
warning). Problems are one-line :class:`envs.errors.DataError` errors. This module does not
import torch, so that building the flags stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from envs.features import FeatureStore, open_features
from envs.features.provenance import FeatureProvenance, check_provenance

#: Where a checkpoint's ``extra`` records the provenance of its training features.
PROVENANCE_KEY = "feature_provenance"
#: What names the training features of a checkpoint that does not record their file.
UNKNOWN_FEATURES = "its training features"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_feature_flags(parser: argparse.ArgumentParser, checkpoint: str) -> None:
    """``--feature-columns`` and ``--allow-other-features``; ``checkpoint`` names what the
    features are checked against in the help (e.g. ``"the checkpoint"``)."""
    parser.add_argument(
        "--feature-columns",
        type=_positive,
        metavar="N",
        default=None,
        help="read the first N columns of a feature file that stores more (public releases "
        "with extra columns after the visual feature; default: none, the file's width must "
        "be the model's exactly)",
    )
    parser.add_argument(
        "--allow-other-features",
        action="store_true",
        help=f"use features made by another encoder than {checkpoint} was trained on (same "
        "width), with a warning on stderr (default: off, such features are refused)",
    )


def features_extra(path: str | os.PathLike[str], store: FeatureStore) -> dict[str, Any]:
    """What a checkpoint's ``extra`` records about its training features ``store``
    (opened from ``path``): ``features``, ``feature_size`` and :data:`PROVENANCE_KEY`."""
    provenance = FeatureProvenance.of_store(store, path)
    return {
        "features": provenance.path,
        "feature_size": provenance.width,
        PROVENANCE_KEY: provenance.to_record(),
    }


def trained_provenance(payload: Mapping[str, Any]) -> FeatureProvenance:
    """The provenance of the features a checkpoint payload was trained on (width only for
    a checkpoint that records none)."""
    extra = payload.get("extra") or {}
    width = int(payload["model_config"]["feature_size"])
    path = str(extra.get("features") or UNKNOWN_FEATURES)
    return FeatureProvenance.from_record(path, width, extra.get(PROVENANCE_KEY))


def check_checkpoint_features(
    features: FeatureProvenance,
    payload: Mapping[str, Any],
    checkpoint: str | os.PathLike[str],
    *,
    allow_other: bool = False,
    warn: bool = True,
) -> None:
    """Refuse ``features`` for the checkpoint ``payload`` (read from ``checkpoint``) when
    they are of another width, or of another encoder without ``allow_other`` (then a
    warning naming both goes to stderr when ``warn``). Raises :class:`DataError`."""
    message = check_provenance(
        features, trained_provenance(payload), checkpoint, allow_other=allow_other
    )
    if message is not None and warn:
        print(f"warning: {message}", file=sys.stderr)


def open_checked_features(
    path: str | os.PathLike[str],
    payload: Mapping[str, Any],
    checkpoint: str | os.PathLike[str],
    *,
    feature_columns: int | None = None,
    allow_other: bool = False,
) -> FeatureStore:
    """Open the feature file ``path`` for the checkpoint ``payload`` and check it
    (:func:`check_checkpoint_features`); the caller closes the store."""
    store = open_features(path, cache_size=0, feature_columns=feature_columns)
    try:
        provenance = FeatureProvenance.of_store(store, path)
        check_checkpoint_features(provenance, payload, checkpoint, allow_other=allow_other)
    except BaseException:
        store.close()
        raise
    return store


__all__ = [
    "PROVENANCE_KEY",
    "add_feature_flags",
    "check_checkpoint_features",
    "features_extra",
    "open_checked_features",
    "trained_provenance",
]
