"""Images encoded on the fly: the QA model reads image files instead of a feature file.

The stored-feature path (``clipvil features --images --grid``, then ``train-qa --features``)
encodes every image once with a frozen encoder. This module does the same encoding inside
the model, so that the encoder can also be fine-tuned end to end (CLIP-ViL's frozen
features are the default; fine-tuning is the option):

- :class:`ImageFiles` finds each image id's file under the QA data root (the layout of
  :mod:`vqa_ve.datasets`)::

      DIR/vqa/{subtype}/COCO_{subtype}_{image_id:012d}.jpg     (test-dev2015 reads test2015)
      DIR/snli_ve/images/{Flickr30K_ID}.jpg
      DIR/vcr/vcr1images/{movie}/{image}.jpg                  (found by file stem: the id)

  and serves each image prepared by the encoder's own ``preprocess`` (the exact tensor
  :func:`~vln_agent.extract_images.extract_image_features` encodes), in the shape
  :func:`vqa_ve.datasets.collate` stacks: ``[3, H*W]`` per image, so a batch's ``image``
  holds pixels ``[B, 3, H*W]`` instead of tokens. With ``cache`` (the default) each image
  is decoded and preprocessed once and kept in memory (``3*H*W`` float32 per image: 150 KB
  at 112 px, 600 KB at 224 px; the embedded worlds' few hundred images fit
  easily, a full COCO does not: turn it off there);
- :class:`EncodedQAModel` is the fusion model with its image encoder in front: pixels
  ``[B, 3, H*W]`` -> image tokens ``[B, h*w, C]`` (:meth:`CLIPEncoder.encode_image_grid`,
  the stored ``.grid`` datasets) or ``[B, 1, E]`` (the pooled embedding) -> the fusion model.
  Frozen, the encoder runs without gradients in eval mode and its parameters stay out of
  the optimizer; fine-tuned, it trains with the fusion model. Either way its weights are in
  the model's state dict (``image_encoder.model.*``) and :func:`encoder_record` describes
  its architecture in the checkpoint, so ``eval-qa`` rebuilds it with nothing but the file
  (:func:`build_encoded_model`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.errors import DataError
from envs.features.provenance import NO_WEIGHTS, WEIGHTS_SHA256_ATTR, encoder_identity
from envs.fileio import file_sha256
from vln_agent.encoders import CLIPEncoder, create_encoder, read_checkpoint_metadata
from vln_agent.extract_images import ImageFeatures, image_grid_dims, list_images, load_image
from vqa_ve.data.vcr import IMAGES_DIR as VCR_IMAGES_DIR
from vqa_ve.datasets import TASK_DIRS, FeatureFiles, QAExample, check_features
from vqa_ve.models.fusion import ENCODER_PAYLOAD_KEY, QABatch, QAFusionModel, QAModelConfig

#: The folder of SNLI-VE's Flickr30k images under ``DIR/snli_ve/``.
SNLI_VE_IMAGES_DIR = "images"
#: VQA's image ids are ``COCO_{subtype}_{image_id:012d}``; COCO and Flickr30k files are JPEGs.
VQA_IMAGE_PREFIX = "COCO_"
IMAGE_SUFFIX = ".jpg"
#: Image tokens the encoder gives the fusion model: its grid cells or its pooled embedding.
GRID_TOKENS, POOLED_TOKENS = "grid", "pooled"
IMAGE_TOKENS = (GRID_TOKENS, POOLED_TOKENS)
#: ``image_encoder`` weights that ask for a random init (seeded by the run's seed).
RANDOM_WEIGHTS = "random"
#: The fine-tuned encoder's optimizer group (after the fusion model's).
ENCODER_GROUP = 1
#: Colour channels of a preprocessed image.
IMAGE_CHANNELS = 3


class ImageFiles:
    """Preprocessed images by image id, read from their files under the QA data root.

    It stands where :class:`~vqa_ve.datasets.FeatureFiles` stands for
    :func:`~vqa_ve.datasets.collate` and :func:`~vqa_ve.training.evaluation.predict`:
    ``files[image_id]`` is float32 ``[3, H*W]`` and :attr:`grid_shape` is ``(3, H*W)``.
    An image id names its file (module layout): VQA's and SNLI-VE's directly, VCR's through
    an index of ``vcr1images/`` by file stem (the ids of ``clipvil features --images``).
    """

    layout = "image-files"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        task: str,
        encoder: CLIPEncoder,
        cache: bool = True,
    ) -> None:
        self.task = task
        self.path = Path(data_dir) / TASK_DIRS[task]
        self.preprocess = encoder.preprocess
        height, width = encoder.image_size
        self.grid_shape = (IMAGE_CHANNELS, height * width)
        self.feature_dim = height * width
        self.attrs: dict[str, Any] = {"model_name": encoder.model_name}
        self.cache: dict[str, np.ndarray] | None = {} if cache else None
        self._vcr_index: dict[str, Path] | None = None

    def image_path(self, image_id: str) -> Path | None:
        """The file of ``image_id`` (None when the id names none; the file may be missing)."""
        if self.task == "vqa":
            name = image_id.removeprefix(VQA_IMAGE_PREFIX)
            if name == image_id or "_" not in name:
                return None
            subtype = name.rsplit("_", 1)[0]  # COCO_{subtype}_{image_id:012d}
            return self.path / subtype / f"{image_id}{IMAGE_SUFFIX}"
        if self.task == "snli-ve":
            return self.path / SNLI_VE_IMAGES_DIR / f"{image_id}{IMAGE_SUFFIX}"
        if self._vcr_index is None:
            self._vcr_index = list_images(self.path / VCR_IMAGES_DIR)
        return self._vcr_index.get(image_id)

    def __contains__(self, image_id: object) -> bool:
        path = self.image_path(image_id) if isinstance(image_id, str) else None
        return path is not None and path.is_file()

    def __getitem__(self, image_id: str) -> np.ndarray:
        """float32 ``[3, H*W]``: the image prepared by the encoder's ``preprocess``."""
        if self.cache is not None and image_id in self.cache:
            return self.cache[image_id]
        path = self.image_path(image_id)
        if path is None:
            raise DataError(self.path, f"no image file for image {image_id}")
        pixels = self.preprocess(load_image(path))  # [3, H, W]
        array = pixels.reshape(self.grid_shape).numpy()  # [3, H*W]
        if self.cache is not None:
            self.cache[image_id] = array
        return array

    def check(self, examples: Iterable[QAExample], source: Path) -> None:
        """Fail fast (one line naming the file) when an example's image file is missing."""
        for example in examples:
            path = self.image_path(example.image_id)
            if path is None:
                raise DataError(
                    self.path,
                    f"no image file for image {example.image_id} (example {example.key} of "
                    f"{source})",
                )
            if not path.is_file():
                raise DataError(
                    path, f"image file not found (image of example {example.key} of {source})"
                )


def check_inputs(
    features: ImageFeatures | FeatureFiles | ImageFiles,
    examples: Sequence[QAExample],
    source: Path,
) -> None:
    """:func:`~vqa_ve.datasets.check_features` of a feature file, or
    :meth:`ImageFiles.check` (naming the missing file) when images are encoded on the fly."""
    if isinstance(features, ImageFiles):
        features.check(examples, source)
    else:
        check_features(features, examples, source)


def token_shape(encoder: CLIPEncoder, tokens: str) -> tuple[int, int]:
    """``(R, F)`` of one image's tokens: ``(h*w, C)`` grid cells or ``(1, E)`` pooled."""
    if tokens not in IMAGE_TOKENS:
        raise ValueError(f"image tokens {tokens!r}, expected one of {IMAGE_TOKENS}")
    if tokens == POOLED_TOKENS:
        return 1, encoder.embed_dim
    height, width, channels = image_grid_dims(encoder)
    return height * width, channels


def encode_pixels(
    encoder: CLIPEncoder, pixels: torch.Tensor, tokens: str, finetune: bool
) -> torch.Tensor:
    """``[B, 3, H*W]`` (or ``[B, 3, H, W]``) pixels -> image tokens ``[B, R, F]``: the grid
    cells ``[B, h*w, C]`` or the pooled embedding ``[B, 1, E]``; gradients reach the
    encoder only when ``finetune``."""
    images = pixels.reshape(pixels.shape[0], IMAGE_CHANNELS, *encoder.image_size)
    with torch.set_grad_enabled(finetune and torch.is_grad_enabled()):
        if tokens == POOLED_TOKENS:
            return encoder.encode_image(images)[:, None]  # [B, 1, E]
        return encoder.encode_image_grid(images).flatten(1, 2)  # [B, h*w, C]


class EncodedQAModel(nn.Module):
    """The fusion model with its image encoder in front (see the module).

    Batches carry pixels ``[B, 3, H*W]`` (:class:`ImageFiles`); the encoder turns them into
    the image tokens of the stored-feature path.
    """

    def __init__(
        self,
        fusion: QAFusionModel,
        image_encoder: CLIPEncoder,
        tokens: str = GRID_TOKENS,
        finetune: bool = False,
    ) -> None:
        super().__init__()
        expected = (fusion.config.num_regions, fusion.config.feature_dim)
        if token_shape(image_encoder, tokens) != expected:
            raise ValueError(
                f"{image_encoder.model_name} {tokens} tokens are "
                f"{token_shape(image_encoder, tokens)}, the fusion model takes {expected}"
            )
        self.fusion = fusion
        self.image_encoder = image_encoder
        self.tokens = tokens
        self.finetune = finetune
        image_encoder.requires_grad_(finetune)
        self.train(self.training)

    @property
    def config(self) -> QAModelConfig:
        return self.fusion.config

    def image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H*W]`` (or ``[B, 3, H, W]``) pixels -> image tokens ``[B, R, F]``."""
        return encode_pixels(self.image_encoder, pixels, self.tokens, self.finetune)

    def encoded(self, batch: QABatch) -> QABatch:
        """``batch`` with its pixels replaced by image tokens."""
        return dataclasses.replace(batch, image=self.image_tokens(batch.image))

    def forward(self, batch: QABatch) -> torch.Tensor:
        return self.fusion(self.encoded(batch))

    def losses(self, batch: QABatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return self.fusion.losses(self.encoded(batch))

    def train(self, mode: bool = True) -> EncodedQAModel:
        """Train/eval mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if not self.finetune:
            self.image_encoder.eval()
        return self


def build_image_encoder(
    weights: str, model_name: str = "", device: str | torch.device = "cpu"
) -> CLIPEncoder:
    """The encoder of ``train-qa --image-encoder WEIGHTS [--encoder-model NAME]``: a pretrained
    tag or weight file (as ``clipvil features --pretrained``), or ``random`` (a random init
    drawn from the global generator, which the trainer seeds)."""
    if weights != RANDOM_WEIGHTS and not model_name:
        metadata = read_checkpoint_metadata(weights) if os.path.isfile(weights) else None
        if metadata is None:
            raise DataError(
                "--encoder-model",
                "required unless --image-encoder is a clipvil checkpoint (which records its model)",
            )
        model_name = str(metadata["model_name"])
    if not model_name:
        raise DataError("--encoder-model", "required with --image-encoder random")
    pretrained = None if weights == RANDOM_WEIGHTS else weights
    return create_encoder(model_name, pretrained, device=device)


def parameter_groups(model: EncodedQAModel, encoder_learning_rate: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the fusion model's (the run's learning rate), then,
    when fine-tuned, the encoder's at ``encoder_learning_rate`` (group :data:`ENCODER_GROUP`)."""
    groups: list[dict[str, Any]] = [{"params": list(model.fusion.parameters())}]
    if model.finetune:
        groups.append(
            {"params": list(model.image_encoder.parameters()), "lr": encoder_learning_rate}
        )
    return groups


def encoder_record(model: EncodedQAModel, weights: str, seed: int) -> dict[str, Any]:
    """The checkpoint's :data:`ENCODER_PAYLOAD_KEY` entry: what rebuilds the encoder's
    architecture (its weights are in the model's state dict), its tokens, whether it was
    fine-tuned, and where its starting weights came from (``identity``: the
    :func:`~envs.features.provenance.encoder_identity` a feature file of it would record;
    a weight file is hashed, so call this once per run)."""
    encoder = model.image_encoder
    attrs: dict[str, Any] = {
        "model_name": encoder.model_name,
        "image_size": int(encoder.image_size[0]),
        "pretrained": NO_WEIGHTS if weights == RANDOM_WEIGHTS else weights,
        "seed": seed,
    }
    if os.path.isfile(weights):
        attrs[WEIGHTS_SHA256_ATTR] = file_sha256(weights)
    return {
        "model_name": encoder.model_name,
        "model_config": encoder.model_config,
        "image_size": list(encoder.image_size),
        "tokens": model.tokens,
        "shape": list(token_shape(encoder, model.tokens)),
        "finetuned": model.finetune,
        "pretrained": weights,
        "identity": encoder_identity(attrs),
    }


def image_provenance_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of its image tokens when it encodes images itself (as
    :func:`~vqa_ve.datasets.image_provenance` does for a feature file)."""
    return {"layout": ImageFiles.layout, "shape": record["shape"], "encoder": record["identity"]}


def encoder_from_record(record: dict[str, Any]) -> CLIPEncoder:
    """The architecture an :data:`ENCODER_PAYLOAD_KEY` entry describes, randomly initialised
    (its weights are in the checkpoint's state dict)."""
    encoder = create_encoder(
        record["model_name"], None, quick_gelu=record["model_config"].get("quick_gelu")
    )
    if list(encoder.image_size) != list(record["image_size"]):
        encoder.set_image_size(tuple(record["image_size"]))
    return encoder


def build_encoded_model(payload: dict[str, Any]) -> EncodedQAModel:
    """The model of a checkpoint holding an :data:`ENCODER_PAYLOAD_KEY` entry, with random
    weights (the caller loads ``payload["state_dict"]``)."""
    record = payload[ENCODER_PAYLOAD_KEY]
    encoder = encoder_from_record(record)
    fusion = QAFusionModel(QAModelConfig(**payload["model_config"]))
    return EncodedQAModel(fusion, encoder, record["tokens"], bool(record["finetuned"]))
