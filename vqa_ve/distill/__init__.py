"""CLIP-TD: targeted distillation of a CLIP teacher into the QA fusion model, during
fine-tuning only (arXiv 2201.05729; rewritten as arXiv 2204.10496).

* :mod:`.config` — :class:`DistillConfig`, the ``distill`` section of a QA run's settings;
* :mod:`.selection` — per-instance adaptive token selection and its two scorers (CLIP
  relevance, the student's own attention via :class:`StudentTap`);
* :mod:`.weighting` — per-instance weights from the teacher's zero-shot confidence;
* :mod:`.loss` — the projection into CLIP's space and the weighted distillation term;
* :mod:`.teacher` — the teacher's precomputed image features and cached text embeddings;
* :mod:`.distiller` — one training step's distillation put together (:class:`Distiller`).

Nothing here is saved with, or needed by, a trained QA model.
"""

from __future__ import annotations

from vqa_ve.distill.config import (
    DISTANCES,
    DISTILL_MODES,
    STUDENT_TOKENS,
    TOKEN_SCORERS,
    WEIGHTINGS,
    DistillConfig,
)
from vqa_ve.distill.distiller import Distiller, Teacher, TeacherBatch
from vqa_ve.distill.loss import DistillProjection, distillation_loss, token_distances
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
    embed_texts,
    instance_text,
    load_teacher,
    project_grid,
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

__all__ = [
    "DISTANCES",
    "DISTILL_MODES",
    "STUDENT_TOKENS",
    "TOKEN_SCORERS",
    "WEIGHTINGS",
    "DistillConfig",
    "DistillProjection",
    "Distiller",
    "StudentTap",
    "Teacher",
    "TeacherBatch",
    "TeacherImageFeatures",
    "TextEmbeddingCache",
    "attention_scores",
    "candidate_texts",
    "clip_relevance_scores",
    "confidence_in_target",
    "distillation_loss",
    "embed_texts",
    "instance_text",
    "instance_weights",
    "load_teacher",
    "project_grid",
    "resample_grid",
    "select_tokens",
    "student_confidence",
    "teacher_target",
    "token_distances",
    "top_candidate_is_right",
    "zero_shot_probabilities",
]
