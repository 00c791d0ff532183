"""Per-instance dynamic weights of the distillation term: how far the teacher is trusted.

CLIP-TD applies "a dynamically weighted objective" per instance (arXiv 2201.05729,
abstract); the formula of the weight could not be read here, so ours is stated: the
teacher's **zero-shot confidence in the right candidate**. The teacher embeds the image
(its pooled embedding) and every candidate text of the instance (VQA answers, SNLI-VE's
hypothesis against a reference caption, VCR's four choices; see
:func:`vqa_ve.distill.teacher.candidate_texts`), and CLIP's own zero-shot classifier gives
``p = softmax(logit_scale x cos(image, candidate))`` over the candidates
(:func:`zero_shot_probabilities`). The confidence is ``p`` of the right candidate (VQA: the
soft-score-weighted mean of ``p`` over the right answers, :func:`confidence_in_target`).

Weightings (:data:`~vqa_ve.distill.config.WEIGHTINGS`), each monotone non-decreasing in the
teacher's confidence:

* ``constant``: 1 for every instance;
* ``teacher-confidence``: the confidence itself, in [0, 1];
* ``teacher-confidence-x-student-uncertainty``: the confidence times ``1 -`` the student's
  own probability of the right answer (detached): distil most where the teacher is right
  and the student is not yet.

``zero_when_teacher_wrong`` sets the weight to 0 where the teacher's top candidate is not a
right one (any weighting).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqa_ve.distill.config import WEIGHTINGS


def zero_shot_probabilities(
    image_embedding: torch.Tensor,
    candidate_embeddings: torch.Tensor,
    logit_scale: float | torch.Tensor,
    candidate_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP's zero-shot distribution ``[B, K]`` over each instance's candidates: image
    embeddings ``[B, E]``, candidate text embeddings ``[B, K, E]`` (or ``[K, E]`` shared by
    the batch), ``candidate_mask`` ``[B, K]`` (False: not a candidate of that instance)."""
    image = F.normalize(image_embedding.float(), dim=-1)  # [B, E]
    texts = F.normalize(candidate_embeddings.float(), dim=-1)  # [B, K, E] or [K, E]
    if texts.ndim == 2:
        cosine = image @ texts.T  # [B, K]
    else:
        cosine = torch.einsum("be,bke->bk", image, texts)  # [B, K]
    scale = torch.as_tensor(logit_scale, dtype=cosine.dtype, device=cosine.device)
    logits = cosine * scale  # [B, K]
    if candidate_mask is not None:
        logits = logits.masked_fill(~candidate_mask.bool(), float("-inf"))
    return torch.softmax(logits, dim=-1)  # [B, K]


def confidence_in_target(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[B]``: the probability of the right candidate. ``target``: class ids ``[B]``, or
    VQA soft scores ``[B, K]`` (the score-weighted mean probability of the scored answers;
    0 where no answer is scored)."""
    if target.ndim == 1:
        return probabilities.gather(-1, target.long()[:, None])[:, 0]  # [B]
    scores = target.float()  # [B, K]
    total = scores.sum(-1)  # [B]
    weighted = (probabilities * scores).sum(-1)  # [B]
    return torch.where(total > 0, weighted / total.clamp(min=1e-12), torch.zeros_like(total))


def top_candidate_is_right(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B]``: the top candidate is the label (class ids ``[B]``) or has a
    positive soft score (VQA ``[B, K]``)."""
    top = probabilities.argmax(-1)  # [B]
    if target.ndim == 1:
        return top == target.long()
    return target.gather(-1, top[:, None])[:, 0] > 0  # [B]


def student_confidence(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The student's probability of the right answer ``[B]`` (detached): softmax of
    ``[B, K]`` logits at the label (SNLI-VE, VCR), or for VQA's independent sigmoids the
    soft-score-weighted mean ``sigmoid`` over the scored answers."""
    logits = logits.detach().float()
    if target.ndim == 1:
        return confidence_in_target(torch.softmax(logits, dim=-1), target)
    return confidence_in_target(torch.sigmoid(logits), target)


def instance_weights(
    weighting: str,
    teacher_confidence: torch.Tensor,
    teacher_right: torch.Tensor | None = None,
    student_right_probability: torch.Tensor | None = None,
    zero_when_teacher_wrong: bool = False,
) -> torch.Tensor:
    """The distillation weight of each instance ``[B]`` (no gradient), from the teacher's
    confidence ``[B]``, whether its top candidate is right ``[B]`` (needed by
    ``zero_when_teacher_wrong``) and the student's probability of the right answer ``[B]``
    (needed by ``teacher-confidence-x-student-uncertainty``)."""
    confidence = teacher_confidence.detach().float()  # [B]
    if weighting == "constant":
        weights = torch.ones_like(confidence)
    elif weighting == "teacher-confidence":
        weights = confidence
    elif weighting == "teacher-confidence-x-student-uncertainty":
        if student_right_probability is None:
            raise ValueError(f"{weighting} needs the student's probability of the right answer")
        weights = confidence * (1.0 - student_right_probability.detach().float())
    else:
        raise ValueError(f"weighting {weighting!r}, expected one of {WEIGHTINGS}")
    if zero_when_teacher_wrong:
        if teacher_right is None:
            raise ValueError("zero_when_teacher_wrong needs whether the teacher is right")
        weights = torch.where(teacher_right.bool(), weights, torch.zeros_like(weights))
    return weights  # [B]
