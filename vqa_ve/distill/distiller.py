"""One training step's distillation, put together: what ``QATrainer`` calls instead of
``model.losses(batch)`` when ``--distill`` is ``naive`` or ``clip-td``.

:class:`Teacher` holds the frozen teacher (text tower and projections, the precomputed
image feature files, the text cache); :class:`Distiller` holds the learned projection, the
only trained parameters distillation adds. Neither is part of the QA model: a distilled
checkpoint has the parameters and forward cost of an undistilled one, and evaluation
never builds either.

Per step (:meth:`Distiller.losses`): the student runs once inside a
:class:`~vqa_ve.distill.selection.StudentTap`; its image tokens (VCR: those of the
right choice's sequence, the image seen with its right answer) are projected into CLIP's
space and matched to the teacher's grid cells (resampled onto the student's grid when the
two differ) on the selected tokens, weighted per instance:

* ``naive``: every image token, weight 1;
* ``clip-td``: tokens from :func:`~vqa_ve.distill.selection.select_tokens` on the
  configured scorer's scores, weights from :func:`~vqa_ve.distill.weighting.instance_weights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vln_agent.encoders import CLIPEncoder
from vqa_ve.data.vqa import AnswerVocabulary
from vqa_ve.datasets import QAExample
from vqa_ve.distill.config import DistillConfig
from vqa_ve.distill.loss import DistillProjection, distillation_loss
from vqa_ve.distill.selection import (
    StudentTap,
    attention_scores,
    clip_relevance_scores,
    select_tokens,
)
from vqa_ve.distill.teacher import (
    TeacherImageFeatures,
    TextEmbeddingCache,
    candidate_texts,
    instance_text,
    load_teacher,
    resample_grid,
    teacher_target,
)
from vqa_ve.distill.weighting import (
    confidence_in_target,
    instance_weights,
    student_confidence,
    top_candidate_is_right,
    zero_shot_probabilities,
)
from vqa_ve.models.fusion import QABatch, QAFusionModel


@dataclass(frozen=True)
class TeacherBatch:
    """The teacher's view of a batch (no gradient)."""

    #: Grid cells in the joint space, on the student's grid ``[B, R, E]``.
    cells: torch.Tensor
    #: Pooled image embeddings ``[B, E]``.
    pooled: torch.Tensor
    #: Embedding of each instance's text ``[B, E]``.
    text: torch.Tensor
    #: Zero-shot candidates ``[B, K, E]`` (VQA: ``[A, E]`` shared by the batch).
    candidates: torch.Tensor


class Teacher:
    """The frozen teacher: its encoder, image feature files and text cache."""

    def __init__(
        self,
        encoder: CLIPEncoder,
        features: TeacherImageFeatures,
        task: str,
        answers: AnswerVocabulary | None = None,
    ) -> None:
        self.encoder, self.features, self.task, self.answers = encoder, features, task, answers
        self.texts = TextEmbeddingCache(encoder)
        self._answer_candidates: torch.Tensor | None = None  # [A, E], VQA only

    @classmethod
    def from_config(
        cls, config: DistillConfig, task: str, answers: AnswerVocabulary | None = None
    ) -> Teacher:
        """The teacher a run's settings name (``teacher``, ``teacher_model``,
        ``teacher_features``)."""
        if config.teacher is None:
            raise ValueError("no teacher weights given")
        encoder = load_teacher(config.teacher, config.teacher_model)
        return cls(encoder, TeacherImageFeatures(config.teacher_features, encoder), task, answers)

    def prepare(self, examples: Sequence[QAExample]) -> None:
        """Embed every text the teacher will read for ``examples`` now, in one fixed
        order: an embedding depends slightly on the batch it was computed in (texts are
        trimmed to the batch's longest), so embedding on first use would make a resumed
        run differ from an uninterrupted one in the last bits."""
        texts = {instance_text(example) for example in examples}
        if self.task == "vqa":
            texts.update(candidate_texts("vqa", examples[0], self.answers))
        else:
            for example in examples:
                texts.update(candidate_texts(self.task, example, self.answers))
        self.texts(sorted(texts))

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def close(self) -> None:
        self.features.close()

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature ``exp(logit_scale)``."""
        return float(self.encoder.model.logit_scale.detach().exp())

    def batch(
        self,
        examples: Sequence[QAExample],
        student_grid: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> TeacherBatch:
        """The teacher's features of ``examples`` on a student grid ``(h, w)``."""
        ids = [example.image_id for example in examples]
        cells = resample_grid(self.features.cells(ids), self.features.grid_size, student_grid)
        text = self.texts([instance_text(example) for example in examples])  # [B, E]
        if self.task == "vqa":
            if self._answer_candidates is None:
                self._answer_candidates = self.texts(
                    candidate_texts("vqa", examples[0], self.answers)
                )  # [A, E], embedded once
            candidates = self._answer_candidates
        else:
            candidates = torch.stack(
                [self.texts(candidate_texts(self.task, e, self.answers)) for e in examples]
            )  # [B, K, E]
        return TeacherBatch(
            cells.to(device),  # [B, R, E]
            self.features.pooled(ids).to(device),  # [B, E]
            text.to(device),
            candidates.to(device),
        )


class Distiller(nn.Module):
    """The distillation term of a training step; its projection is its only parameter."""

    def __init__(
        self,
        config: DistillConfig,
        teacher: Teacher,
        student_dim: int,
        student_grid: tuple[int, int],
    ) -> None:
        super().__init__()
        if not config.enabled:
            raise ValueError("distill_mode none has no distiller")
        self.config, self.teacher, self.student_grid = config, teacher, student_grid
        self.projection = DistillProjection(student_dim, teacher.embed_dim)

    def losses(
        self, model: QAFusionModel, batch: QABatch, examples: Sequence[QAExample]
    ) -> tuple[dict[str, torch.Tensor], dict[str, float], torch.Tensor]:
        """``({"task_loss", "distill_loss"}, stats, logits)``: loss parts to sum
        (``distill_loss`` already times ``distill_loss_weight``), statistics to log
        (``distill_weight``, ``selected_fraction``, ``teacher_confidence``,
        ``teacher_accuracy``) and the student's logits."""
        if batch.target is None:
            raise ValueError("distillation needs labelled batches")
        config = self.config
        with StudentTap(model) as tap:
            parts, logits = model.losses(batch)
        rows = self._rows(batch)  # [B]: the sequence of each instance that is distilled
        tokens = tap.image_tokens(config.student_tokens)[rows]  # [B, R, d]
        teacher = self.teacher.batch(examples, self.student_grid, tokens.device)
        size, regions = tokens.shape[:2]
        valid = torch.ones(size, regions, dtype=torch.bool, device=tokens.device)  # [B, R]
        probabilities = zero_shot_probabilities(
            teacher.pooled, teacher.candidates, self.teacher.logit_scale
        )  # [B, K]
        target = teacher_target(self.teacher.task, batch.target)  # [B] or [B, A]
        confidence = confidence_in_target(probabilities, target)  # [B]
        right = top_candidate_is_right(probabilities, target)  # [B]
        if config.distill_mode == "naive":
            selected, weights = valid, torch.ones_like(confidence)
        else:
            if config.token_scorer == "clip":
                scores = clip_relevance_scores(
                    teacher.cells, teacher.text, self.teacher.logit_scale
                )  # [B, R]
            else:
                scores = attention_scores(tap.pooled_attention()[rows, -regions:])  # [B, R]
            selected = select_tokens(scores, valid, config.selection_mass, config.min_tokens)
            weights = instance_weights(
                config.weighting,
                confidence,
                right,
                student_confidence(logits, batch.target),
                config.zero_when_teacher_wrong,
            )  # [B]
        distilled = distillation_loss(
            self.projection(tokens), teacher.cells, selected, weights, valid, config.distance
        )
        losses = {**parts, "distill_loss": config.distill_loss_weight * distilled["distill_loss"]}
        stats = {
            "distill_weight": float(distilled["distill_weight"]),
            "selected_fraction": float(distilled["selected_fraction"]),
            "teacher_confidence": float(confidence.mean()),
            "teacher_accuracy": float(right.float().mean()),
        }
        return losses, stats, logits

    def _rows(self, batch: QABatch) -> torch.Tensor:
        """``[B]`` row of each instance among the student's sequences (VCR: its right
        choice's, of the ``B x 4`` sequences; otherwise its own)."""
        size = batch.image.shape[0]
        rows = torch.arange(size, device=batch.image.device)  # [B]
        if batch.tokens.ndim == 3:  # VCR: [B, 4, L]
            assert batch.target is not None
            rows = rows * batch.tokens.shape[1] + batch.target.long()
        return rows
