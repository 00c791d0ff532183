"""Encoder checkpoints in clipvil's one checkpoint format, and peeking into weight files.

An encoder checkpoint is a :mod:`vln_agent.training.checkpoint` file of ``kind: encoder``
(written by :func:`save_encoder`, atomically)::

    {
        "version": 2, "kind": "encoder",   # the one format's header
        "model_config": {...},             # the open_clip config dict the model was built from
        "state_dict": {...},               # open_clip state dict (fp32, or fp16 with half=True)
        "model_name": "clipvil-small",     # open_clip model name
        "preprocess_cfg": {...},           # size, mean, std, interpolation, resize_mode, ...
        "image_size": [112, 112],          # input size the position embeddings are sized for
        "open_clip_version": "3.3.0",
        ...extra,                          # e.g. "train_config", "step", "metrics", "encoder_kind"
    }

Loading needs nothing but the file: ``load_encoder(path)``. open_clip itself also loads it
(its ``load_state_dict`` takes the ``"state_dict"`` entry), so the file is also a valid
``pretrained=`` argument of ``open_clip.create_model_and_transforms``. Files of the
earlier encoder-only layout (``"format": "clipvil-encoder"``, version 1, such as the shipped
``clipvil-small-synthetic.pt``) are read the same way.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import open_clip
import torch

from envs.errors import DataError
from vln_agent.training.checkpoint import CHECKPOINT_VERSION, save_checkpoint

if TYPE_CHECKING:
    from vln_agent.encoders.encoder import CLIPEncoder

#: ``kind`` of an encoder checkpoint in the one checkpoint format.
ENCODER_CHECKPOINT_KIND = "encoder"
#: ``"format"`` value of the earlier encoder-only layout (version 1), still read.
CHECKPOINT_FORMAT = "clipvil-encoder"
#: Keys :func:`save_encoder` writes itself; ``extra`` may not overwrite them.
RESERVED_KEYS = frozenset(
    {
        "kind",
        "version",
        "model_name",
        "model_config",
        "preprocess_cfg",
        "image_size",
        "state_dict",
        "open_clip_version",
    }
)


def save_encoder(
    encoder: CLIPEncoder,
    path: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``encoder`` as a self-describing checkpoint, atomically (temp file, then rename).

    ``extra`` adds entries such as ``{"train_config": ..., "step": ..., "metrics": ...}``
    (plain Python values and tensors, so that ``torch.load(weights_only=True)`` reads them).
    ``half=True`` stores floating-point tensors as fp16 (half the size); they are cast back
    to the model's dtype on loading.
    """
    extra = dict(extra or {})
    clash = sorted(RESERVED_KEYS & extra.keys())
    if clash:
        raise ValueError(f"extra may not overwrite the checkpoint keys {clash}")
    state_dict = {
        key: (
            value.detach().to("cpu", torch.float16)
            if half and value.is_floating_point()
            else value.detach().to("cpu")
        )
        for key, value in encoder.model.state_dict().items()
    }
    checkpoint = {
        "kind": ENCODER_CHECKPOINT_KIND,
        "model_name": encoder.model_name,
        "model_config": _plain(encoder.model_config),
        "preprocess_cfg": _plain(encoder.preprocess_cfg),
        "image_size": list(encoder.image_size),
        "state_dict": state_dict,
        "open_clip_version": open_clip.__version__,
        **extra,
    }
    path = Path(path)
    save_checkpoint(path, checkpoint)
    return path


def is_torchscript_archive(path: str | os.PathLike[str]) -> bool:
    """True for a TorchScript (``torch.jit``) archive, such as OpenAI's released CLIP ``.pt``.

    Raises:
        DataError: the file looks like a zip archive but its listing is damaged.
    """
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(path, f"damaged zip archive ({_first_line(err)})") from None
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


#: Types of the metadata entries a clipvil encoder checkpoint must have.
_METADATA_TYPES = {
    "model_name": str,
    "model_config": dict,
    "preprocess_cfg": dict,
    "image_size": list,
    "state_dict": dict,
}


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata of a clipvil checkpoint (everything but ``"state_dict"``), or None.

    None means "some other weight file" (a plain open_clip state dict, a ``.safetensors``
    file, a TorchScript archive): open_clip decides whether it can load it. The tensors are
    memory-mapped, not read. Raises :class:`DataError` for an empty, unreadable or damaged
    file, and for a clipvil checkpoint that is not an encoder or lacks an entry.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file, expected CLIP weights")
    if not zipfile.is_zipfile(path) or is_torchscript_archive(path):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch's reader fails in many ways on a damaged file
        raise DataError(path, f"not a readable PyTorch checkpoint ({_first_line(err)})") from None
    if not isinstance(checkpoint, dict):
        return None
    legacy = checkpoint.get("format") == CHECKPOINT_FORMAT
    if not legacy and checkpoint.get("kind") != ENCODER_CHECKPOINT_KIND:
        if "kind" in checkpoint and "version" in checkpoint:
            raise DataError(path, f"is a {checkpoint['kind']} checkpoint, not an encoder")
        return None
    version = checkpoint.get("version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= CHECKPOINT_VERSION
        or (legacy and version != 1)
    ):
        raise DataError(
            path, f"clipvil checkpoint version {version!r}, expected {CHECKPOINT_VERSION}"
        )
    required = RESERVED_KEYS - {"open_clip_version", "kind", "version"}
    missing = sorted(required - checkpoint.keys())
    if missing:
        raise DataError(path, f"clipvil checkpoint lacks the keys {missing}")
    for key, expected in _METADATA_TYPES.items():
        if not isinstance(checkpoint[key], expected):
            kind = type(checkpoint[key]).__name__
            raise DataError(path, f"{key} is a {kind}, expected a {expected.__name__}")
    return {key: value for key, value in checkpoint.items() if key != "state_dict"}


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so that configs survive JSON and ``weights_only`` loads."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
