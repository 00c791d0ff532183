"""``CLIPEncoder``: one open_clip CLIP model with the features CLIP-ViL uses.

Shapes (``B`` batch, ``E`` joint embedding size, ``h x w`` feature grid, ``L`` context):

* :meth:`CLIPEncoder.encode_image` -> ``[B, E]``: the pooled, projected image embedding,
  exactly open_clip's ``model.encode_image`` (CLIP-ViL's VLN view features).
* :meth:`CLIPEncoder.encode_image_grid` -> ``[B, h, w, C]``: grid features (CLIP-ViL's VQA
  features). ViT: patch tokens after the last block and ``ln_post`` (``C`` = width; with
  ``project=True`` also through ``proj``, ``C = E``). ModifiedResNet: the ``layer4`` map
  before attention pooling (``C`` = 32 x width, 2048 for RN50; with ``project=True`` each
  location goes through the attention pool's value and output projections, ``C = E``).
* :meth:`CLIPEncoder.encode_text` -> ``[B, E]`` (``trim_padding=True``: the same embedding,
  cheaper, from the positions up to the last end-of-text token) and
  :meth:`CLIPEncoder.encode_text_tokens` -> :class:`TextTokens` (``[B, L, W]`` per-token
  features, mask, end-of-text positions).

Resolution: :meth:`CLIPEncoder.set_image_size` resizes the position embeddings (ViT, and
the ResNet attention pool used by the pooled output) from the checkpoint's native ones;
see :mod:`.pos_embed`. ResNet grid features take any input size without resizing.

Precision: ``"fp32"`` (default), ``"bf16"`` (autocast on CPU or GPU) or ``"fp16"`` (autocast,
GPU only). Weights stay fp32; outputs are returned as float32.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transform import PreprocessCfg, image_transform_v2
from open_clip.transformer import VisionTransformer
from torch import nn

from vln_agent.encoders.locking import frozen_to_eval
from vln_agent.encoders.pos_embed import as_size, grid_shape, interpolate_pos_embed

#: Precision names -> autocast dtype (None: plain fp32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
#: Total stride of a ModifiedResNet from the input to ``layer4``.
RESNET_STRIDE = 32
#: Default batch size of :meth:`CLIPEncoder.embed_images`.
EMBED_BATCH_SIZE = 64


@dataclass
class TextTokens:
    """Per-token text features.

    Attributes:
        features: ``[B, L, W]`` after the last block and ``ln_final`` (``[B, L, E]`` when
            projected).
        mask: ``[B, L]`` bool, True from the start token through the end-of-text token.
        eot_index: ``[B]`` position of the token the pooled embedding is taken from.
    """

    features: torch.Tensor
    mask: torch.Tensor
    eot_index: torch.Tensor


def check_precision(precision: str, device: torch.device | str) -> str:
    """Validate a precision name for a device; fp16 needs a GPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    device_type = torch.device(device).type
    if precision == "fp16" and device_type == "cpu":
        raise ValueError("precision 'fp16' needs a GPU; on CPU use 'bf16' (autocast) or 'fp32'")
    if precision == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use 'fp16' or 'fp32'")
    return precision


class CLIPEncoder(nn.Module):
    """An open_clip CLIP model plus its transforms, tokenizer and feature extractors.

    Build one with :func:`~vln_agent.encoders.create_encoder`. Attributes: ``model`` (the
    open_clip model), ``model_name``, ``model_config`` (open_clip config dict, kept in step
    with the image size), ``preprocess_cfg``, ``preprocess`` (PIL image -> ``[3, H, W]``,
    open_clip's ``preprocess_val``), ``preprocess_train``, ``tokenizer`` and ``precision``.
    """

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        model_config: dict[str, Any],
        tokenizer: Any,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.model_config = copy.deepcopy(model_config)
        self.preprocess_cfg: dict[str, Any] = copy.deepcopy(model.visual.preprocess_cfg)
        self.tokenizer = tokenizer
        self.precision = precision
        self._native_size = self.image_size
        pos_embed = self._pos_embed_owner_or_none()
        self._native_pos_embed = (
            None if pos_embed is None else pos_embed.positional_embedding.detach().cpu().clone()
        )
        self._build_transforms()

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_vit(self) -> bool:
        return isinstance(self.model.visual, VisionTransformer)

    @property
    def is_resnet(self) -> bool:
        return isinstance(self.model.visual, ModifiedResNet)

    @property
    def image_size(self) -> tuple[int, int]:
        """The input size ``(H, W)`` the pooled image embedding is set up for."""
        return as_size(self.model.visual.image_size)

    @property
    def embed_dim(self) -> int:
        """``E``: size of the pooled image and text embeddings."""
        return int(self.model_config["embed_dim"])

    @property
    def context_length(self) -> int:
        """``L``: number of tokens per text (the tokenizer pads/truncates to it)."""
        return int(self.tokenizer.context_length)

    @property
    def grid_stride(self) -> tuple[int, int]:
        """Input pixels per grid cell: the ViT patch size, or 32 for a ResNet."""
        if self.is_vit:
            return as_size(self.model.visual.patch_size)
        if self.is_resnet:
            return RESNET_STRIDE, RESNET_STRIDE
        raise ValueError(f"{self.model_name}: grid features need a ViT or ModifiedResNet tower")

    # ------------------------------------------------------------------ images
    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``[B, 3, H, W]`` preprocessed images -> ``[B, E]`` pooled embeddings (float32).

        ``(H, W)`` must be :attr:`image_size` (see :meth:`set_image_size`).
        """
        images = self._images(images, pooled=True)
        with self._autocast():
            features = self.model.encode_image(images)  # [B, E]
        features = features.float()
        return F.normalize(features, dim=-1) if normalize else features

    def encode_image_grid(self, images: torch.Tensor, project: bool = False) -> torch.Tensor:
        """``[B, 3, H, W]`` -> grid features ``[B, h, w, C]`` (see the module docstring).

        ViT: ``(H, W)`` must be :attr:`image_size`, ``h, w = H / patch, W / patch``.
        ResNet: any size that is a multiple of 32, ``h, w = H / 32, W / 32``.
        """
        images = self._images(images, pooled=False)
        visual = self.model.visual
        with self._autocast():
            if self.is_vit:
                if visual.attn_pool is not None:
                    raise ValueError(f"{self.model_name}: attentional-pool ViTs are not supported")
                tokens = visual.forward_intermediates(
                    images,
                    indices=1,
                    normalize_intermediates=True,
                    intermediates_only=True,
                    output_fmt="NLC",
                )["image_intermediates"][0]  # [B, h*w, width], after ln_post
                if project:
                    tokens = tokens @ visual.proj  # [B, h*w, E]
                height, width = grid_shape(tuple(images.shape[-2:]), self.grid_stride)
                grid = tokens.reshape(tokens.shape[0], height, width, tokens.shape[-1])
            else:
                fmap = visual.forward_intermediates(images, indices=1, intermediates_only=True)
                grid = fmap["image_intermediates"][0].permute(0, 2, 3, 1)  # [B, h, w, 32*width]
                if project:
                    pool = visual.attnpool
                    grid = pool.c_proj(pool.v_proj(grid))  # [B, h, w, E]
        return grid.float()

    def encode_image_and_grid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode_image` and :meth:`encode_image_grid` of ``[B, 3, H, W]`` in one pass
        of the image tower (feature extraction with ``--grid``): ``([B, E], [B, h, w, C])``,
        the same values as the two calls."""
        images = self._images(images, pooled=True)
        visual = self.model.visual
        if self.is_vit and visual.attn_pool is not None:
            raise ValueError(f"{self.model_name}: attentional-pool ViTs are not supported")
        with self._autocast():
            out = visual.forward_intermediates(
                images,
                indices=1,
                normalize_intermediates=self.is_vit,
                intermediates_only=False,
                **({"output_fmt": "NLC"} if self.is_vit else {}),
            )
        pooled = out["image_features"].float()  # [B, E]
        cells = out["image_intermediates"][0]
        if self.is_vit:  # [B, h*w, width], after ln_post
            height, width = grid_shape(tuple(images.shape[-2:]), self.grid_stride)
            grid = cells.reshape(cells.shape[0], height, width, cells.shape[-1])
        else:  # [B, 32*width, h, w]
            grid = cells.permute(0, 2, 3, 1)
        return pooled, grid.float()

    @torch.no_grad()
    def embed_images(
        self,
        images: torch.Tensor,
        batch_size: int = EMBED_BATCH_SIZE,
        normalize: bool = False,
    ) -> torch.Tensor:
        """Batched feature extraction: ``[N, 3, H, W]`` -> ``[N, E]`` float32 on the CPU.

        Runs in eval mode without gradients, ``batch_size`` images at a time on
        :attr:`device` (the input may stay on the CPU).
        """
        was_training = self.training
        self.eval()
        try:
            chunks = [
                self.encode_image(images[start : start + batch_size], normalize).cpu()
                for start in range(0, images.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        if not chunks:
            return torch.empty(0, self.embed_dim)
        return torch.cat(chunks)  # [N, E]

    def pixels_to_input(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB images ``[N, H, W, 3]`` (already at the input size) -> normalized float
        ``[N, 3, H, W]`` on the CPU, with the model's mean and std (what ``preprocess`` does
        after resizing and cropping). The batched path for rendered views."""
        images = torch.as_tensor(pixels)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(
                f"pixels must be uint8 [N, H, W, 3], got {images.dtype} {tuple(images.shape)}"
            )
        mean = torch.tensor(self.preprocess_cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess_cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        chw = images.permute(0, 3, 1, 2).float().div_(255.0)  # [N, 3, H, W]
        return chw.sub_(mean).div_(std)

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: str | list[str]) -> torch.Tensor:
        """Texts -> ``[B, L]`` token ids with open_clip's tokenizer for this model."""
        return self.tokenizer(texts)

    def encode_text(
        self, token_ids: torch.Tensor, normalize: bool = False, trim_padding: bool = False
    ) -> torch.Tensor:
        """``[B, L]`` token ids -> ``[B, E]`` pooled text embeddings (float32).

        ``trim_padding``: run the text tower on the positions up to the batch's last
        end-of-text token only. CLIP's text transformer is causal and pools at the
        end-of-text token, so the padding after it never changes the embedding (up to
        float rounding), and cutting it (77 -> ~20 positions for captions) saves most of
        the cost. Text towers this does not hold for (non-causal, custom) run in full.
        """
        token_ids = self._tokens(token_ids)
        trim = trim_padding and self._text_is_causal_argmax_pooled()
        with self._autocast():
            if trim:
                features = self._encode_text_trimmed(token_ids)  # [B, E]
            else:
                features = self.model.encode_text(token_ids)  # [B, E]
        features = features.float()
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text_tokens(self, token_ids: torch.Tensor, project: bool = False) -> TextTokens:
        """``[B, L]`` token ids -> per-token features ``[B, L, W]`` (``[B, L, E]`` projected)."""
        token_ids = self._tokens(token_ids)
        with self._autocast():
            tokens = self.model.forward_intermediates(
                text=token_ids,
                text_indices=1,
                normalize_intermediates=True,
                intermediates_only=True,
            )["text_intermediates"][0]  # [B, L, W], after ln_final
            if project:
                tokens = self._project_text(tokens)  # [B, L, E]
        eot_index = self._eot_index(token_ids)  # [B]
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)  # [L]
        mask = positions[None, :] <= eot_index[:, None]  # [B, L]
        return TextTokens(features=tokens.float(), mask=mask, eot_index=eot_index)

    # ------------------------------------------------------------------ training
    def forward(
        self, images: torch.Tensor, token_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contrastive forward: normalized ``[B, E]`` image and text embeddings and
        ``exp(logit_scale)``, the arguments of ``open_clip.ClipLoss``."""
        image = self.encode_image(images, normalize=True)
        text = self.encode_text(token_ids, normalize=True)
        return image, text, self.model.logit_scale.exp()

    def train(self, mode: bool = True) -> CLIPEncoder:
        """Set train/eval mode; fully frozen submodules always stay in eval mode."""
        super().train(mode)
        if mode:
            frozen_to_eval(self.model)
        return self

    # ------------------------------------------------------------------ resolution
    def set_image_size(self, size: int | tuple[int, int]) -> None:
        """Set the input size: resize the position embeddings and the preprocessing.

        The embeddings are always resampled from the native ones (those of the
        checkpoint, refreshed whenever the model is at its native size), so resizing
        and resizing back restores the model exactly. Call it before building an
        optimizer: the position embedding becomes a new ``nn.Parameter``.
        """
        new_size = as_size(size)
        owner = self._pos_embed_owner_or_none()
        if owner is None:
            raise ValueError(f"{self.model_name}: resizing needs a ViT or ModifiedResNet tower")
        new_grid = grid_shape(new_size, self.grid_stride)
        native_grid = grid_shape(self._native_size, self.grid_stride)
        current = owner.positional_embedding
        if self.image_size == self._native_size:
            self._native_pos_embed = current.detach().cpu().clone()
        resized = interpolate_pos_embed(self._native_pos_embed, native_grid, new_grid)
        owner.positional_embedding = nn.Parameter(
            resized.to(current.device, current.dtype), requires_grad=current.requires_grad
        )  # [1 + h*w, C]
        square = new_size[0] == new_size[1]
        visual = self.model.visual
        if self.is_vit:
            visual.image_size = new_size
            visual.grid_size = new_grid
        else:
            visual.image_size = new_size[0] if square else new_size
        config_size = new_size[0] if square else list(new_size)
        self.model_config["vision_cfg"]["image_size"] = config_size
        self.preprocess_cfg["size"] = config_size
        visual.preprocess_cfg = copy.deepcopy(self.preprocess_cfg)
        self._build_transforms()

    # ------------------------------------------------------------------ helpers
    def _pos_embed_owner_or_none(self) -> nn.Module | None:
        if self.is_vit:
            return self.model.visual
        if self.is_resnet:
            return self.model.visual.attnpool
        return None

    def _build_transforms(self) -> None:
        known = PreprocessCfg.__dataclass_fields__.keys()
        cfg = PreprocessCfg(**{k: v for k, v in self.preprocess_cfg.items() if k in known})
        self.preprocess = image_transform_v2(cfg, is_train=False)
        self.preprocess_train = image_transform_v2(cfg, is_train=True)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[check_precision(self.precision, self.device)]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _images(self, images: torch.Tensor, pooled: bool) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        size = tuple(images.shape[-2:])
        if (pooled or self.is_vit) and size != self.image_size:
            raise ValueError(
                f"images are {size[0]}x{size[1]} but {self.model_name} is set up for "
                f"{self.image_size[0]}x{self.image_size[1]}: call set_image_size({size}) "
                "or create the encoder with image_size=..."
            )
        return images.to(self.device, torch.float32)

    def _tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.ndim != 2 or token_ids.shape[1] != self.context_length:
            raise ValueError(
                f"token ids must be [B, {self.context_length}] (use encoder.tokenize), "
                f"got {tuple(token_ids.shape)}"
            )
        return token_ids.to(self.device, torch.long)

    def _text_is_causal_argmax_pooled(self) -> bool:
        """A plain open_clip CLIP text tower with a causal mask, pooled at the largest id."""
        model = self.model
        return (
            isinstance(model, CLIP)
            and model.attn_mask is not None
            and getattr(model, "text_pool_type", None) == "argmax"
        )

    def _encode_text_trimmed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> ``[B, E]``: open_clip's ``CLIP.encode_text`` on the first ``l``
        positions, ``l`` = the batch's last end-of-text position + 1 (call under autocast)."""
        model = self.model
        eot_index = token_ids.argmax(dim=-1)  # [B]: the end-of-text id is the largest
        length = int(eot_index.max()) + 1
        token_ids = token_ids[:, :length]  # [B, l]
        x = model.token_embedding(token_ids) + model.positional_embedding[:length]  # [B, l, W]
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)  # [B, l, W]
        x = x[torch.arange(len(token_ids), device=x.device), eot_index]  # [B, W]
        return self._project_text(x)  # [B, E]

    def _text_attr(self, name: str, text_name: str | None = None) -> Any:
        """A text-tower attribute of CLIP (flattened) or CustomTextCLIP (``model.text``)."""
        text = getattr(self.model, "text", None)
        if text is not None:
            return getattr(text, text_name or name, None)
        return getattr(self.model, name, None)

    def _project_text(self, tokens: torch.Tensor) -> torch.Tensor:
        projection = self._text_attr("text_projection")
        if projection is None:
            return tokens
        if isinstance(projection, nn.Linear):
            return projection(tokens)
        return tokens @ projection

    def _eot_index(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Where open_clip's ``text_global_pool`` takes the pooled token from, per text."""
        pool_type = self._text_attr("text_pool_type", "pool_type")
        batch, length = token_ids.shape
        if pool_type == "eos":
            eos_id = self._text_attr("text_eos_id", "eos_id")
            return (token_ids == eos_id).int().argmax(dim=-1)
        if pool_type == "first":
            return torch.zeros(batch, dtype=torch.long, device=token_ids.device)
        if pool_type == "last":
            return torch.full((batch,), length - 1, dtype=torch.long, device=token_ids.device)
        return token_ids.argmax(dim=-1)  # "argmax": the end-of-text id is the largest
