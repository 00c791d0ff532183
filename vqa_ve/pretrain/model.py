"""The pretraining model: the QA fusion model's single-stream transformer with three heads.

:class:`VLPretrainModel` holds a :class:`~vqa_ve.models.fusion.QAFusionModel` (``fusion``,
task ``vqa``) and adds the pretraining heads on its outputs:

- **MLM**: a transform (linear, GELU, LayerNorm) of each text output, then logits over the
  word vocabulary through the *tied* word embedding plus a bias (BERT's head), scaled by
  ``1/sqrt(d)``: the fusion model's embeddings start N(0, 1) (``nn.Embedding``'s init, not
  BERT's N(0, 0.02)), and unscaled dot products of width ``d`` would start the softmax so
  peaked that most words' gradients are rounding noise;
- **ITM**: two logits (mismatched, matched) from the pooled [CLS];
- **QA** (the second stage): the fusion model's own VQA head over the pretraining data's
  answer vocabulary (LXMERT's QA pretraining task).

With an ``image_encoder`` (a CLIP tower) the batches carry pixels and the model encodes
them into grid tokens itself, the encoder frozen (eval mode, no gradients) or trained end
to end (``finetune``; CLIP-ViL trains it with its own SGD optimizer). Its state-dict
entries are named as :class:`~vqa_ve.encoding.EncodedQAModel`'s (``fusion.*``,
``image_encoder.*``).

Fine-tuning (``clipvil train-qa --init RUN/best.pt``) takes ``fusion``'s weights except its
head (:func:`vqa_ve.pretrain.transfer.initialise_from_pretrained`), so the pretrained
transformer, embeddings and image projection all carry over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vln_agent.encoders import CLIPEncoder
from vqa_ve.encoding import GRID_TOKENS, encode_pixels, token_shape
from vqa_ve.models.fusion import QABatch, QAFusionModel, QAModelConfig
from vqa_ve.pretrain.objectives import IGNORE_INDEX, MATCHED

#: The checkpoint kind of a pretraining run.
PRETRAIN_KIND = "vl-pretrain"
#: Logits of the matching head (mismatched, matched).
ITM_CLASSES = 2


@dataclass(frozen=True)
class CaptionBatch:
    """Masked captions ``tokens`` / ``segments`` ``[B, L]``, image tokens ``image``
    ``[B, R, F]``, MLM labels ``mlm_labels`` ``[B, L]`` (:data:`IGNORE_INDEX` off the
    masked words of matched pairs) and ITM labels ``itm_labels`` ``[B]``."""

    tokens: torch.Tensor
    segments: torch.Tensor
    image: torch.Tensor
    mlm_labels: torch.Tensor
    itm_labels: torch.Tensor

    def to(self, device: torch.device | str) -> CaptionBatch:
        return CaptionBatch(
            *(t.to(device) for t in (self.tokens, self.segments, self.image)),
            self.mlm_labels.to(device),
            self.itm_labels.to(device),
        )


class VLPretrainModel(nn.Module):
    """MLM + ITM (+ QA) on the fusion model's transformer (see the module)."""

    def __init__(
        self,
        config: QAModelConfig,
        image_encoder: CLIPEncoder | None = None,
        finetune: bool = False,
    ) -> None:
        super().__init__()
        if config.task != "vqa":
            raise ValueError("the pretraining model's QA head is a VQA head (task 'vqa')")
        self.fusion = QAFusionModel(config)
        self.image_encoder = image_encoder
        self.tokens = GRID_TOKENS
        self.finetune = finetune and image_encoder is not None
        if image_encoder is not None:
            expected = (config.num_regions, config.feature_dim)
            if token_shape(image_encoder, GRID_TOKENS) != expected:
                raise ValueError(
                    f"{image_encoder.model_name} grid tokens are "
                    f"{token_shape(image_encoder, GRID_TOKENS)}, the model takes {expected}"
                )
            image_encoder.requires_grad_(self.finetune)
        width = config.hidden_size
        self.mlm_transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.itm_head = nn.Linear(width, ITM_CLASSES)
        self.train(self.training)  # a frozen encoder in eval mode

    @property
    def config(self) -> QAModelConfig:
        return self.fusion.config

    def image_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Image tokens ``[B, R, F]``: ``image`` itself, or its pixels encoded."""
        if self.image_encoder is None:
            return image
        return encode_pixels(self.image_encoder, image, self.tokens, self.finetune)

    def train(self, mode: bool = True) -> VLPretrainModel:
        """Train/eval mode; a frozen encoder always stays in eval mode."""
        super().train(mode)
        if self.image_encoder is not None and not self.finetune:
            self.image_encoder.eval()
        return self

    def caption_outputs(
        self, batch: CaptionBatch, blind: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MLM logits ``[B, L, V]`` and ITM logits ``[B, 2]`` of a caption batch; ``blind``
        zeroes the image tokens (the text-only reference of an evaluation)."""
        tokens = self.image_tokens(batch.image)  # [B, R, F]
        if blind:
            tokens = torch.zeros_like(tokens)
        image, cells = self.fusion.sample_cells(tokens)  # [B, R', F], [B, R'] or None
        hidden = self.fusion.hidden_states(batch.tokens, batch.segments, image, cells)
        text = self.mlm_transform(hidden[:, : batch.tokens.shape[1]])  # [B, L, d]
        scale = self.config.hidden_size**-0.5  # unit-scale logits from N(0, 1) embeddings
        words = scale * text @ self.fusion.word_embedding.weight.T + self.mlm_bias  # [B, L, V]
        return words, self.itm_head(hidden[:, 0])  # [B, L, V], [B, 2]

    def caption_losses(
        self, batch: CaptionBatch, masked_words: float | None = None, blind: bool = False
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """``{"mlm_loss", "itm_loss"}`` and their accuracies (percent, as floats).

        The MLM loss is the summed cross entropy over the masked words divided by
        ``masked_words`` (default: this batch's count, the mean). A process of a data-parallel
        run passes the global batch's count over the processes, so that the averaged
        gradients are those of the global batch's mean (the counts differ between slices).
        """
        words, matching = self.caption_outputs(batch, blind)
        scored = batch.mlm_labels != IGNORE_INDEX  # [B, L]
        if scored.any():
            total = F.cross_entropy(words[scored], batch.mlm_labels[scored], reduction="sum")
            mlm = total / (masked_words if masked_words is not None else int(scored.sum()))
            mlm_hits = (words[scored].argmax(dim=-1) == batch.mlm_labels[scored]).float()
        else:  # a batch of mismatched pairs only: nothing to predict
            mlm = words.sum() * 0.0
            mlm_hits = torch.zeros(0)
        itm = F.cross_entropy(matching, batch.itm_labels)
        itm_hits = (matching.argmax(dim=-1) == batch.itm_labels).float()
        stats = {
            "mlm_accuracy": 100.0 * float(mlm_hits.mean()) if len(mlm_hits) else float("nan"),
            "itm_accuracy": 100.0 * float(itm_hits.mean()),
            "masked_words": int(scored.sum()),
            "matched_share": float((batch.itm_labels == MATCHED).float().mean()),
        }
        return {"mlm_loss": mlm, "itm_loss": itm}, stats

    def qa_losses(self, batch: QABatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``{"qa_loss"}`` of a VQA batch (the fusion model's head) and its logits."""
        batch = dataclasses.replace(batch, image=self.image_tokens(batch.image))
        parts, logits = self.fusion.losses(batch)
        return {"qa_loss": parts["task_loss"]}, logits

    def forward(self, batch: QABatch) -> torch.Tensor:
        """The VQA logits ``[B, A]`` (what evaluation's ``predict`` runs)."""
        return self.fusion(dataclasses.replace(batch, image=self.image_tokens(batch.image)))
