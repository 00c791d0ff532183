"""The distillation term: selected student tokens, projected into CLIP's joint space,
matched to the teacher's features of the same tokens, weighted per instance.

Per instance ``b`` with selected tokens ``S_b`` and weight ``w_b``::

    distill_loss = mean_b( w_b * mean_{t in S_b} dist(P(s_bt), c_bt) )

``s_bt``: a student token (``[d]``; an image token of the fusion model, see
:class:`~vqa_ve.distill.selection.StudentTap`), ``P``: :class:`DistillProjection`, a learned
linear map ``d -> E`` that lives in the training wrapper only (the saved QA model has the
same parameters and forward cost as an undistilled one; the projection is thrown away
after training), ``c_bt``: the teacher's feature of the same token (a grid cell of
the teacher's feature file, projected into the joint space). An instance with no selected
token adds 0; the mean over the batch divides by ``B`` either way, so a zero weight really
removes an instance's pull.

``dist`` (:data:`~vqa_ve.distill.config.DISTANCES`): ``cosine`` (default) is ``1 - cos``:
CLIP is trained and queried by cosine similarity only, so the direction of a feature is
what the teacher knows, and the norms of grid-cell features (which vary with the tower)
are left out; ``l2`` is the mean squared error of the raw features (CLIP-KD's "feature
mimicry", arXiv 2307.12732), which asks the student to match norms too.

``naive`` distillation is the same term with every valid token selected and weight 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqa_ve.distill.config import DISTANCES


class DistillProjection(nn.Module):
    """The learned map of student tokens ``[..., d]`` into CLIP's joint space ``[..., E]``."""

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(student_dim, teacher_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens)  # [..., E]


def token_distances(
    student: torch.Tensor, teacher: torch.Tensor, distance: str = "cosine"
) -> torch.Tensor:
    """``[B, T]`` distances of projected student tokens ``[B, T, E]`` to the teacher's
    features ``[B, T, E]`` (the teacher side carries no gradient)."""
    teacher = teacher.detach().to(student.dtype)
    if distance == "cosine":
        return 1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)  # [B, T]
    if distance == "l2":
        return (student - teacher).pow(2).mean(-1)  # [B, T]
    raise ValueError(f"distance {distance!r}, expected one of {DISTANCES}")


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    selected: torch.Tensor,
    weights: torch.Tensor,
    valid: torch.Tensor | None = None,
    distance: str = "cosine",
) -> dict[str, torch.Tensor]:
    """The named parts: ``distill_loss`` (scalar, with gradient to ``student``),
    ``distill_weight`` (the mean instance weight) and ``selected_fraction`` (selected
    tokens / valid tokens over the batch; every token is valid when ``valid`` is None).

    ``student``: projected tokens ``[B, T, E]``; ``teacher``: ``[B, T, E]``; ``selected``
    and ``valid``: boolean ``[B, T]``; ``weights``: ``[B]``."""
    selected = selected.bool()
    if valid is not None:
        selected = selected & valid.bool()  # [B, T]: padding never counts
    per_token = token_distances(student, teacher, distance)  # [B, T]
    keep = selected.to(per_token.dtype)  # [B, T]
    count = keep.sum(-1)  # [B]
    per_instance = (per_token * keep).sum(-1) / count.clamp(min=1.0)  # [B]
    weights = weights.detach().to(per_instance.dtype)  # [B]
    loss = (weights * per_instance).mean()
    if valid is None:
        total = keep.new_tensor(float(selected.numel()))
    else:
        total = valid.to(per_token.dtype).sum()
    return {
        "distill_loss": loss,
        "distill_weight": weights.mean(),
        "selected_fraction": (count.sum() / total.clamp(min=1.0)).detach(),
    }
