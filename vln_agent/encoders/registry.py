"""clipvil's own open_clip model configs, registered through open_clip's config mechanism.

The JSON files in ``model_configs/`` use open_clip's schema (``embed_dim``, ``vision_cfg``,
``text_cfg``). They are added to open_clip's registry on first use, not on import:

* ``clipvil-small``: ViT 112 px / patch 16 / width 256 / 4 layers, text width 128 / 4 layers.
  10.6 M parameters (the 49,408-token embedding is 6.3 M of them); 21 MB as an fp16
  checkpoint. Sized to be pretrained on a 2-core CPU (~10 min per 50k image-caption pairs).
* ``clipvil-tiny``: ViT 32 px / patch 8, for tests (random init in milliseconds).
* ``clipvil-tiny-rn``: ModifiedResNet 64 px, ``layers`` [1, 1, 1, 1], width 16, for tests.
"""

from __future__ import annotations

from pathlib import Path

import open_clip

from envs.errors import DataError

#: The folder of clipvil's open_clip model config JSON files.
MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"

#: The configs clipvil ships (file stems in :data:`MODEL_CONFIG_DIR`).
CLIPVIL_MODELS = ("clipvil-small", "clipvil-tiny", "clipvil-tiny-rn")

#: The open_clip name schemas that fetch configs from elsewhere; not supported here.
UNSUPPORTED_SCHEMAS = ("hf-hub:", "local-dir:")


def register_model_configs() -> tuple[str, ...]:
    """Add clipvil's configs to open_clip's registry (idempotent); returns their names."""
    known = set(open_clip.list_models())
    if not all(name in known for name in CLIPVIL_MODELS):
        open_clip.add_model_config(MODEL_CONFIG_DIR)
    return CLIPVIL_MODELS


def list_models() -> list[str]:
    """Every model name :func:`~vln_agent.encoders.create_encoder` accepts (open_clip's + ours)."""
    register_model_configs()
    return open_clip.list_models()


def model_config(model_name: str) -> dict:
    """A copy of the open_clip config of ``model_name``; :class:`DataError` if unknown."""
    register_model_configs()
    if model_name.startswith(UNSUPPORTED_SCHEMAS):
        raise DataError(
            model_name,
            "hf-hub:/local-dir: model names are not supported; use a built-in open_clip "
            "model name with pretrained=<tag or local file>",
        )
    config = open_clip.get_model_config(model_name)
    if config is None:
        close = [name for name in open_clip.list_models() if name.lower() == model_name.lower()]
        hint = f"did you mean {close[0]}?" if close else "see vln_agent.encoders.list_models()"
        raise DataError(model_name, f"unknown CLIP model name ({hint})")
    return config
