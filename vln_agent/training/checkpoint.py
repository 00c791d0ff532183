"""The one self-describing checkpoint format of clipvil, written atomically.

Every trained model (the follower, the speaker, the pretrained encoders, and the QA models
to come) is one ``torch.save`` file holding everything needed to rebuild and resume::

    {"version", "kind", "model_config", "train_config", "state_dict", "step", "metrics",
     "vocabulary"?, "extra", "optimizer"?, "scheduler"?, "rng"?}

``kind`` names the model (``follower``, ``speaker``, ``encoder``, ...), ``model_config``
is what its constructor takes, ``train_config`` the run settings, ``extra`` anything else
the model's loader needs (provenance, label spaces); ``optimizer`` / ``scheduler`` /
``rng`` (random states, samplers, history) only a resumed run needs. Loading needs nothing
but the file (nanoGPT's habit) and uses ``torch.load(weights_only=True)``: the payload
holds tensors and plain Python values only. Each model's loader lives next to the model
(:func:`vln_agent.models.follower.load_follower`, ...). Bad files raise a one-line
:class:`~envs.errors.DataError` naming the file.

Version history: 1 stored numpy's random state as an array (read here with numpy's array
types allowed); 2 stores it as plain integers.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.errors import DataError
from envs.fileio import atomic_write

CHECKPOINT_VERSION = 2
_REQUIRED = ("version", "kind", "model_config", "state_dict")
#: Entries only a resumed training run needs.
TRAINING_STATE_KEYS = ("optimizer", "scheduler", "rng", "auxiliary")
#: numpy types that version-1 checkpoints pickled in their random states.
_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core to np._core
_LEGACY_NUMPY_GLOBALS = (
    _NUMPY_CORE.multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (with ``version`` added) to ``path`` atomically.

    Raises:
        OutputError: the file cannot be written (nothing is left at ``path``).
    """
    payload = {"version": CHECKPOINT_VERSION, **payload}
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_write(path, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as err:  # torch's zip writer wraps the file's own error
            if isinstance(err.__context__, OSError):
                raise err.__context__ from err
            raise


def _torch_load(path: Path) -> Any:
    """``torch.load`` on the CPU with ``weights_only`` (version-1 numpy states allowed)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(path, f"cannot read ({err.strerror or err})") from None
    try:
        with torch.serialization.safe_globals(list(_LEGACY_NUMPY_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise DataError(path, "holds Python objects beyond tensors and plain values") from None
        raise DataError(path, "corrupt or truncated checkpoint (UnpicklingError)") from None
    except Exception as err:  # torch's reader fails in many ways on a damaged file
        raise DataError(path, f"corrupt or truncated checkpoint ({type(err).__name__})") from None


def _check_header(path: Path, payload: object) -> dict[str, Any]:
    """The payload, if its header is that of a checkpoint this clipvil reads."""
    if not isinstance(payload, dict) or any(key not in payload for key in _REQUIRED):
        raise DataError(path, "not a clipvil checkpoint (missing version/kind/model_config)")
    version, kind = payload["version"], payload["kind"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(path, f"checkpoint version {version!r}, expected an integer >= 1")
    if version > CHECKPOINT_VERSION:
        raise DataError(path, f"checkpoint version {version} is newer than this clipvil")
    if not isinstance(kind, str):
        raise DataError(path, f"checkpoint kind {kind!r}, expected a string")
    for key, expected in (("model_config", dict), ("state_dict", dict)):
        if not isinstance(payload[key], expected):
            raise DataError(path, f"{key} is a {type(payload[key]).__name__}, expected a dict")
    return payload


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (on the CPU, ``weights_only``).

    Raises:
        DataError: naming the file: missing, unreadable, damaged, not a clipvil
            checkpoint, a newer version, or not of ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint file not found")
    payload = _check_header(path, _torch_load(path))
    if kind is not None and payload["kind"] != kind:
        raise DataError(path, f"is a {payload['kind']} checkpoint, expected {kind}")
    return payload


#: What building a model from a damaged config or loading mismatched weights raises.
_MISMATCH_ERRORS = (
    TypeError,
    RuntimeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    ZeroDivisionError,
)


def load_model(
    path: str | os.PathLike[str], kind: str, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a ``kind`` checkpoint in eval mode, built by ``build(payload)`` and given
    its weights, and the payload; a payload that does not fit is a one-line DataError."""
    payload = load_checkpoint(path, kind=kind)
    try:
        model = build(payload)
        model.load_state_dict(payload["state_dict"])
    except _MISMATCH_ERRORS as err:
        raise DataError(path, f"checkpoint does not match the {kind} ({err!s})") from None
    return model.eval(), payload


def capture_rng() -> dict[str, Any]:
    """The global random states (python, numpy, torch, CUDA) for exact resumption, as
    tensors and plain values (readable with ``weights_only=True``)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, [int(k) for k in keys], int(position), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        # dropout on a GPU draws from the CUDA generators, not from torch's CPU one
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_checkpoint(
    source: str | os.PathLike[str], target: str | os.PathLike[str], **extra: Any
) -> dict[str, Any]:
    """Copy a checkpoint without its optimizer and random states (what ships for inference).

    ``extra`` entries are merged into the payload's ``extra`` dict (e.g. a card's provenance).
    Returns the written payload. The model, its config, vocabulary and metrics are kept, so
    :func:`load_checkpoint` (and the loaders on top of it) read the result like the source.
    """
    payload = load_checkpoint(source)
    kept = {key: value for key, value in payload.items() if key not in TRAINING_STATE_KEYS}
    kept["extra"] = {**dict(kept.get("extra") or {}), **extra}
    save_checkpoint(target, kept)
    return kept
