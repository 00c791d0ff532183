"""``create_encoder``: the one factory of the CLIP stack (open_clip underneath)."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
from collections.abc import Iterator
from typing import Any

import open_clip
import torch
from open_clip.model import resize_pos_embed

from envs.errors import DataError
from vln_agent.encoders.checkpoint import read_checkpoint_metadata
from vln_agent.encoders.encoder import CLIPEncoder, check_precision
from vln_agent.encoders.locking import lock_image_tower, lock_text_tower
from vln_agent.encoders.registry import model_config, register_model_configs
from vln_agent.encoders.weights import WeightsSource, resolve_pretrained

#: Config keys open_clip's factory consumes itself (not CLIP constructor arguments).
_FACTORY_ONLY_KEYS = ("custom_text",)
#: Entries of a TorchScript CLIP archive's state dict that are not model weights (OpenAI's
#: hyper-parameters, and the causal mask open_clip keeps as a non-persistent buffer).
TORCHSCRIPT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")
#: Longest detail quoted from an underlying loading error.
ERROR_DETAIL_CHARS = 300


def create_encoder(
    model_name: str,
    pretrained: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    image_size: int | tuple[int, int] | None = None,
    lock_image: bool = False,
    lock_text: bool = False,
    unlocked_image_groups: int = 0,
    unlocked_text_layers: int = 0,
    quick_gelu: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
) -> CLIPEncoder:
    """Build a :class:`CLIPEncoder` from an open_clip model name and weights, in eval mode.

    Args:
        model_name: Any open_clip model name (``"ViT-B-32"``, ``"RN50x4"``, ...) or one of
            clipvil's configs (``"clipvil-small"``, ``"clipvil-tiny"``).
        pretrained: A pretrained tag (``"openai"``), looked up in the local cache only; a
            local weight file (open_clip/OpenAI state dict ``.pt``/``.bin``/``.safetensors``,
            an OpenAI TorchScript archive, or a clipvil checkpoint from
            :func:`~vln_agent.encoders.save_encoder`); or None for a random init.
        device: Where the model lives.
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast, GPU only).
        image_size: Input size to resize the position embeddings to (default: native).
        lock_image: Freeze the image tower (frozen parts stay in eval mode).
        lock_text: Freeze the text tower.
        unlocked_image_groups: With ``lock_image``, leave the last N layer groups trainable.
        unlocked_text_layers: With ``lock_text``, leave the last N layer groups trainable.
        quick_gelu: The activation; None takes it from the weights (tag registry entry,
            clipvil checkpoint, True for TorchScript archives) or else the model config.
            OpenAI's weights need QuickGELU: pass True when loading them from a plain
            state dict under a name such as ``"ViT-B-32"``.
        cache_dir: The download cache open_clip uses (default: the Hugging Face hub cache
            and ``~/.cache/clip``).
        allow_download: Fetch a tag's weights when they are not cached (needs network).

    Raises:
        DataError: Unknown model name or tag, missing/corrupt weight file, weights that do
            not fit the model; :class:`~vln_agent.encoders.WeightsUnavailableError` when a
            tag's weights are not cached. Each has a one-line message.
        ValueError: Bad options (fp16 on CPU, unlocked groups without locking).
    """
    check_precision(precision, device)
    if (unlocked_image_groups and not lock_image) or (unlocked_text_layers and not lock_text):
        raise ValueError("unlocked_image_groups/unlocked_text_layers need lock_image/lock_text")
    register_model_configs()
    config = model_config(model_name)
    source = resolve_pretrained(model_name, pretrained, cache_dir, allow_download)
    if source.metadata is not None:
        config = _checkpoint_config(model_name, source)
    if quick_gelu is None:
        quick_gelu = source.quick_gelu
    if quick_gelu is None:
        quick_gelu = bool(config.get("quick_gelu", False))
    config["quick_gelu"] = quick_gelu

    model = _build_model(model_name, config, source, device)
    tokenizer = open_clip.get_tokenizer(
        model_name, context_length=config["text_cfg"].get("context_length")
    )
    encoder = CLIPEncoder(model, model_name, config, tokenizer, precision=precision)
    if image_size is not None:
        encoder.set_image_size(image_size)
    if lock_image:
        lock_image_tower(model, unlocked_image_groups)
    if lock_text:
        lock_text_tower(model, unlocked_text_layers)
    return encoder.eval()


def load_encoder(path: str | os.PathLike[str], **kwargs: Any) -> CLIPEncoder:
    """Load a clipvil checkpoint with nothing but the file (the model name is inside).

    ``kwargs`` are :func:`create_encoder`'s keyword arguments.
    """
    metadata = read_checkpoint_metadata(path)
    if metadata is None:
        raise DataError(path, "not a clipvil encoder checkpoint (use create_encoder(name, path))")
    return create_encoder(metadata["model_name"], path, **kwargs)


def _checkpoint_config(model_name: str, source: WeightsSource) -> dict[str, Any]:
    """The architecture stored in a clipvil checkpoint (it wins over the registered one)."""
    metadata = source.metadata
    assert metadata is not None
    if metadata["model_name"] != model_name:
        raise DataError(
            source.path or "",
            f"holds a {metadata['model_name']} model, not {model_name} "
            "(load_encoder(path) reads the name from the file)",
        )
    return copy.deepcopy(metadata["model_config"])


def _build_model(
    model_name: str,
    config: dict[str, Any],
    source: WeightsSource,
    device: str | torch.device,
) -> torch.nn.Module:
    """open_clip's ``create_model_and_transforms`` with ``config`` as the architecture."""
    overrides = {k: v for k, v in config.items() if k not in _FACTORY_ONLY_KEYS}
    text_cfg = overrides.get("text_cfg", {})
    if "hf_model_name" in text_cfg:  # weights come from the checkpoint, never from the hub
        overrides["text_cfg"] = {**text_cfg, "hf_model_pretrained": False}
    preprocess = {f"image_{key}": value for key, value in source.preprocess.items()}
    kwargs: dict[str, Any] = dict(
        precision="fp32",
        device=device,
        pretrained_text=False,
        **preprocess,
        **overrides,
    )
    if source.path is None:  # a random init asked for: open_clip's warning says nothing new
        with _without_random_init_warning():
            model, _, _ = open_clip.create_model_and_transforms(model_name, None, **kwargs)
        return model
    try:
        if source.torchscript:
            with _without_random_init_warning():
                model, _, _ = open_clip.create_model_and_transforms(model_name, None, **kwargs)
            _load_torchscript_weights(model, source.path)
        else:
            model, _, _ = open_clip.create_model_and_transforms(model_name, source.path, **kwargs)
    except pickle.UnpicklingError as err:
        raise DataError(
            source.path,
            "not a readable weight file (torch.load(weights_only=True) cannot unpickle it; "
            "expected a PyTorch state dict, a .safetensors file or a TorchScript archive)",
        ) from err
    except Exception as err:  # noqa: BLE001 - whatever open_clip hits in a file is one line
        raise DataError(
            source.path,
            f"cannot load it as {model_name} weights ({type(err).__name__}: {_shorten(str(err))})",
        ) from err
    return model


def _load_torchscript_weights(model: torch.nn.Module, path: str) -> None:
    """Load the weights of a TorchScript archive (OpenAI's released ``.pt`` files).

    ``torch.jit.load`` rather than ``torch.load(weights_only=False)``: the archive's
    TorchScript code is never run, only its tensors are read.
    """
    archive = torch.jit.load(path, map_location="cpu")
    state = {
        key: value
        for key, value in archive.state_dict().items()
        if key not in TORCHSCRIPT_EXTRA_KEYS
    }
    resize_pos_embed(state, model)
    model.load_state_dict(state, strict=True)


@contextlib.contextmanager
def _without_random_init_warning() -> Iterator[None]:
    """Silence open_clip's "initialized randomly" warning, and only it, while a model is
    built without weights on purpose (a random init, or weights loaded right after).

    open_clip logs it with ``logging.warning`` on the root logger; a filter on that logger
    for the duration of the build drops this one message and lets every other through.
    """

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _shorten(text: str, limit: int = ERROR_DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
