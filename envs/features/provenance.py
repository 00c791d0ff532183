"""Feature provenance: which encoder made a feature file, and whether two sets of features
are the same kind (a model trained on one, evaluated or resumed on the other).

A feature file written by clipvil records its encoder in HDF5 root attributes (model name,
weights, kind, image size, width; see :mod:`vln_agent.extract`). A checkpoint records the
same about the features it was trained on (:meth:`FeatureProvenance.to_record`).
:func:`check_provenance` compares the two, the one place where the rules live:

* a width that differs is refused;
* an encoder that differs (same width) is refused unless the caller allows it (the CLI's
  ``--allow-other-features``), in which case the difference comes back as a warning;
* a side that records no encoder (public HAMT / DUET files, legacy TSVs, checkpoints made
  before provenance was recorded) is checked by its width only.

Only plain dictionaries are compared: this module does not import torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envs.errors import DataError
from envs.features.store import FeatureStore

#: The attributes that identify an encoder, compared where both sides record them.
ENCODER_KEYS = ("model_name", "encoder_kind", "weights", "image_size", "feature", "channel_order")
#: Where a feature file records the encoder kind (``clip`` / ``supervised`` / ``random``),
#: and an older spelling of the same.
ENCODER_KIND_ATTRS = ("encoder_kind", "encoder")
#: The attribute with the SHA-256 of the weight file (survives moving the file).
WEIGHTS_SHA256_ATTR = "pretrained_sha256"
#: ``pretrained`` of a random init.
NO_WEIGHTS = "none"
#: Suffixes that mark a ``pretrained`` value as a file path, not an open_clip tag.
WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz")
#: Hex digits of a SHA-256 shown in messages.
SHORT_SHA = 12


def weights_identity(attrs: Mapping[str, Any]) -> str | None:
    """The weights an encoder started from, in a form that survives moving files:
    ``sha256:<hex>`` of the weight file, ``tag:<tag>`` of an open_clip pretrained tag,
    ``random:seed=<n>`` of a random init; None when only a file path is recorded."""
    sha = attrs.get(WEIGHTS_SHA256_ATTR)
    if isinstance(sha, str) and sha:
        return f"sha256:{sha}"
    pretrained = attrs.get("pretrained")
    if pretrained == NO_WEIGHTS:
        return f"random:seed={attrs.get('seed', '?')}"
    if isinstance(pretrained, str) and pretrained:
        is_path = os.path.isabs(pretrained) or pretrained.lower().endswith(WEIGHT_FILE_SUFFIXES)
        return None if is_path else f"tag:{pretrained}"
    return None


def encoder_identity(attrs: Mapping[str, Any]) -> dict[str, str | int]:
    """The :data:`ENCODER_KEYS` a feature file's root attributes record (empty when none)."""
    found: dict[str, Any] = {key: attrs.get(key) for key in ("model_name", "image_size")}
    found["encoder_kind"] = next((attrs[k] for k in ENCODER_KIND_ATTRS if k in attrs), None)
    found["weights"] = weights_identity(attrs)
    found["feature"] = attrs.get("feature")
    found["channel_order"] = attrs.get("channel_order")
    return {
        key: found[key]
        for key in ENCODER_KEYS
        if isinstance(found[key], str | int) and not isinstance(found[key], bool)
    }


@dataclass(frozen=True)
class FeatureProvenance:
    """What a set of features is: the file, its width and (when recorded) its encoder."""

    #: The feature file, as it was given.
    path: str
    #: Columns used (``D``, what a model sees).
    width: int
    #: Columns the file stores (more than ``width`` with an explicit ``feature_columns``).
    stored_width: int
    #: :func:`encoder_identity` of the file; empty for files without metadata.
    encoder: Mapping[str, str | int] = field(default_factory=dict)

    @classmethod
    def of_store(
        cls, store: FeatureStore, path: str | os.PathLike[str] | None = None
    ) -> FeatureProvenance:
        """The provenance of an open store (``path``: how to name the file, default its own)."""
        return cls(
            os.fspath(path if path is not None else store.path),
            store.feature_dim,
            store.stored_dim,
            encoder_identity(store.attrs),
        )

    def to_record(self) -> dict[str, Any]:
        """Plain values for a checkpoint's ``extra`` (readable with ``weights_only``)."""
        return {
            "width": self.width,
            "stored_width": self.stored_width,
            "encoder": dict(self.encoder),
        }

    @classmethod
    def from_record(
        cls, path: str, width: int, record: Mapping[str, Any] | None
    ) -> FeatureProvenance:
        """Back from :meth:`to_record`; ``record`` None (a checkpoint made before provenance
        was recorded) gives a width-only provenance."""
        if not isinstance(record, Mapping):
            return cls(path, width, width, {})
        encoder = record.get("encoder")
        return cls(
            path,
            int(record.get("width", width)),
            int(record.get("stored_width", width)),
            encoder_identity_of_record(encoder),
        )

    def describe(self) -> str:
        """``"clipvil-small (clip, sha256:0123456789ab, 224 px)"``, or ``"no recorded encoder"``."""
        if not self.encoder:
            return "no recorded encoder"
        enc = self.encoder
        details = [str(enc[k]) for k in ("encoder_kind", "weights") if k in enc]
        if "image_size" in enc:
            details.append(f"{enc['image_size']} px")
        name = str(enc.get("model_name", "an encoder"))
        return f"{name} ({', '.join(_short(d) for d in details)})" if details else name


def encoder_identity_of_record(encoder: object) -> dict[str, str | int]:
    """The :data:`ENCODER_KEYS` entries of a recorded encoder dict (others dropped)."""
    if not isinstance(encoder, Mapping):
        return {}
    return {
        key: encoder[key]
        for key in ENCODER_KEYS
        if isinstance(encoder.get(key), str | int) and not isinstance(encoder.get(key), bool)
    }


def encoder_differences(
    a: Mapping[str, str | int], b: Mapping[str, str | int]
) -> list[tuple[str, str | int, str | int]]:
    """``(key, a's value, b's value)`` for each encoder key both record with other values."""
    both = [key for key in ENCODER_KEYS if key in a and key in b]
    return [(key, a[key], b[key]) for key in both if a[key] != b[key]]


def check_provenance(
    features: FeatureProvenance,
    trained: FeatureProvenance,
    trained_by: str | os.PathLike[str],
    *,
    allow_other: bool = False,
) -> str | None:
    """Check that ``features`` can stand in for the features ``trained_by`` (a checkpoint)
    was trained on, described by ``trained``.

    Returns None when they match (or only the width could be compared), else, when
    ``allow_other``, a one-line warning naming both.

    Raises:
        DataError: naming ``features.path``: another width (with both widths and files), or
            another encoder of the same width without ``allow_other``.
    """
    if features.width != trained.width:
        hint = ""
        if not features.encoder and features.stored_width > trained.width:
            hint = f" (--feature-columns {trained.width} reads the first {trained.width} columns)"
        raise DataError(
            features.path,
            f"holds [36, {features.width}] features, but {os.fspath(trained_by)} was trained "
            f"on [36, {trained.width}] features ({trained.path}){hint}",
        )
    differences = encoder_differences(features.encoder, trained.encoder)
    if not differences:
        return None
    shown = ", ".join(f"{key} {_short(a)} vs {_short(b)}" for key, a, b in differences)
    problem = (
        f"features of another encoder than {os.fspath(trained_by)} was trained on "
        f"({trained.path}): {shown}"
    )
    if not allow_other:
        raise DataError(features.path, f"{problem}; pass --allow-other-features if that is meant")
    return f"{features.path}: {problem} (used as asked by --allow-other-features)"


def _short(value: str | int) -> str:
    """A value for a message: SHA-256 digests cut to :data:`SHORT_SHA` hex digits."""
    text = str(value)
    if text.startswith("sha256:") and len(text) > len("sha256:") + SHORT_SHA:
        return text[: len("sha256:") + SHORT_SHA]
    return text


__all__ = [
    "ENCODER_KEYS",
    "FeatureProvenance",
    "check_provenance",
    "encoder_differences",
    "encoder_identity",
    "weights_identity",
]
