"""The paper's three image towers, one architecture: which weights an encoder starts from.

* ``"clip"``: CLIP weights, a pretrained tag (``"openai"``) or a weight file (an open_clip
  state dict, an OpenAI archive, a clipvil ``pretrain-clip`` checkpoint);
* ``"supervised"``: a checkpoint of ``clipvil pretrain-supervised`` (a clipvil encoder
  checkpoint whose metadata says ``"encoder_kind": "supervised"``);
* ``"random"``: a random init of the model, drawn with a seed.

:func:`create_encoder_of_kind` builds one and returns the attributes that describe it in a
feature file (``encoder_kind``, ``pretrained``, and ``seed`` for a random init).
"""

from __future__ import annotations

import os

import torch

from envs.errors import DataError
from vln_agent.encoders.checkpoint import read_checkpoint_metadata
from vln_agent.encoders.encoder import CLIPEncoder, check_precision
from vln_agent.encoders.factory import create_encoder
from vln_agent.encoders.weights import resolve_pretrained

CLIP_KIND = "clip"
SUPERVISED_KIND = "supervised"
RANDOM_KIND = "random"
ENCODER_KINDS = (CLIP_KIND, SUPERVISED_KIND, RANDOM_KIND)
#: Where a clipvil checkpoint (and a feature file) records how its image tower was trained.
ENCODER_KIND_KEY = "encoder_kind"
#: ``pretrained`` attribute recorded for a random init.
NO_WEIGHTS = "none"


def create_encoder_of_kind(
    kind: str,
    model_name: str | None,
    pretrained: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "fp32",
) -> tuple[CLIPEncoder, dict[str, str | int]]:
    """Build the ``kind`` of image tower of ``model_name`` and the attributes describing it.

    Args:
        kind: One of :data:`ENCODER_KINDS`.
        model_name: Any name :func:`~vln_agent.encoders.create_encoder` takes; None to
            take the one that ``pretrained``, a clipvil checkpoint, records.
        pretrained: The weights: a tag or a file (``clip``), a ``pretrain-supervised``
            checkpoint (``supervised``); none for ``random``.
        seed: The seed of a ``random`` init (``torch.manual_seed``, as the tests' fixtures).
        device: ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU only).

    Returns:
        The encoder (eval mode) and ``{"encoder_kind", "pretrained"[, "seed"]}``:
        ``pretrained`` is the tag, the absolute path of the file, or ``"none"``.

    Raises:
        DataError: One line naming the ``clipvil features`` option to fix (``--encoder``,
            ``--model``, ``--pretrained``, ``--device``, ``--precision``): no model name
            given or recorded, weights missing or given to a random init, a tag for
            ``supervised``, a checkpoint of another kind, no GPU;
            and :func:`~vln_agent.encoders.create_encoder`'s errors for the weights.
    """
    if kind not in ENCODER_KINDS:
        raise DataError("--encoder", f"must be one of {', '.join(ENCODER_KINDS)}, not {kind!r}")
    _check_device(device, precision)
    model_name = model_name or _recorded_model_name(pretrained)
    attrs: dict[str, str | int] = {ENCODER_KIND_KEY: kind}
    if kind == RANDOM_KIND:
        if pretrained:
            raise DataError(pretrained, "--encoder random takes no --pretrained weights")
        torch.manual_seed(seed)
        attrs.update(pretrained=NO_WEIGHTS, seed=seed)
        pretrained = None
    else:
        attrs["pretrained"] = _pretrained_attr(kind, model_name, pretrained)
    encoder = create_encoder(model_name, pretrained, device=device, precision=precision)
    return encoder, attrs


def _recorded_model_name(pretrained: str | os.PathLike[str] | None) -> str:
    """The model name a clipvil checkpoint ``pretrained`` records (when none is given)."""
    metadata = None
    if pretrained and os.path.isfile(pretrained):
        metadata = read_checkpoint_metadata(pretrained)
    if metadata is None:
        raise DataError(
            "--model",
            "required unless --pretrained is a clipvil checkpoint (which records its model name)",
        )
    return str(metadata["model_name"])


def _check_device(device: str, precision: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise DataError("--device", "cuda asked for, but torch sees no GPU")
    try:
        check_precision(precision, device)
    except ValueError as err:
        raise DataError("--precision", str(err)) from None


def _pretrained_attr(kind: str, model_name: str, pretrained: str | os.PathLike[str] | None) -> str:
    """Check that ``pretrained`` holds a ``kind`` tower; its tag or absolute path."""
    if not pretrained:
        raise DataError("--pretrained", f"required with --encoder {kind}")
    source = resolve_pretrained(model_name, pretrained)
    if kind == SUPERVISED_KIND and source.tag is not None:
        raise DataError(
            pretrained,
            "is a pretrained tag; --encoder supervised needs a checkpoint of "
            "clipvil pretrain-supervised",
        )
    stored = (source.metadata or {}).get(ENCODER_KIND_KEY)
    if stored is not None and stored != kind:
        raise DataError(pretrained, f"holds a {stored!r} encoder, not {kind!r} (--encoder)")
    return source.tag or os.path.abspath(pretrained)
