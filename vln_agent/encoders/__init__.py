"""The one CLIP stack of clipvil: encoders for the VLN agent and for ``vqa_ve``.

``create_encoder(name, pretrained=tag_or_file)`` builds a :class:`CLIPEncoder` from any
open_clip model (or clipvil's ``clipvil-small`` / ``clipvil-tiny`` configs) with weights
from the local cache or a local file, offline; ``create_encoder_of_kind(kind, name, ...)``
builds one of the paper's three image towers (clip / supervised / random) for a feature
file (see :mod:`.kinds`). See :mod:`.encoder` for the feature shapes
and :mod:`.checkpoint` for the self-describing checkpoint format.
"""

from __future__ import annotations

from vln_agent.encoders.checkpoint import (
    ENCODER_CHECKPOINT_KIND,
    read_checkpoint_metadata,
    save_encoder,
)
from vln_agent.encoders.encoder import PRECISIONS, CLIPEncoder, TextTokens
from vln_agent.encoders.factory import create_encoder, load_encoder
from vln_agent.encoders.kinds import (
    ENCODER_KIND_KEY,
    ENCODER_KINDS,
    NO_WEIGHTS,
    create_encoder_of_kind,
)
from vln_agent.encoders.locking import count_trainable
from vln_agent.encoders.pos_embed import interpolate_pos_embed
from vln_agent.encoders.registry import (
    CLIPVIL_MODELS,
    MODEL_CONFIG_DIR,
    list_models,
    register_model_configs,
)
from vln_agent.encoders.weights import WeightsUnavailableError, resolve_pretrained

__all__ = [
    "ENCODER_CHECKPOINT_KIND",
    "CLIPEncoder",
    "CLIPVIL_MODELS",
    "ENCODER_KINDS",
    "ENCODER_KIND_KEY",
    "MODEL_CONFIG_DIR",
    "NO_WEIGHTS",
    "PRECISIONS",
    "TextTokens",
    "WeightsUnavailableError",
    "count_trainable",
    "create_encoder",
    "create_encoder_of_kind",
    "interpolate_pos_embed",
    "list_models",
    "load_encoder",
    "read_checkpoint_metadata",
    "register_model_configs",
    "resolve_pretrained",
    "save_encoder",
]
