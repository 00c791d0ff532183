"""Per-instance adaptive token selection for CLIP-TD, and its two token scorers.

CLIP-TD distils "a dynamically weighted objective applied to adaptively selected tokens per
instance" (arXiv 2201.05729, abstract). The method section that says how tokens are scored
and how many are kept could not be read here (only the abstracts of 2201.05729 and
2204.10496 were available to this implementation), so every choice below is ours, stated:

* **How many** (:func:`select_tokens`): the scores of an instance's valid tokens are
  softmax-normalised into a distribution, and the fewest top-ranked tokens holding
  ``mass`` of it are kept (nucleus / top-p selection), never fewer than ``min_tokens``. So
  ``k`` follows the score distribution: a peaked one keeps few tokens, a flat one many. The
  default ``mass=0.5`` keeps "the half of the evidence that matters most"; ``mass=1`` keeps
  every valid token (the ``naive`` baseline).
* **Scorer ``clip``** (:func:`clip_relevance_scores`): the cosine of each teacher grid cell
  (projected into CLIP's joint space) to the teacher's text embedding of the instance's
  text, times CLIP's logit scale, so that the softmax above is CLIP's own image-text
  softmax, taken over the cells of one image. The default: it is what the teacher knows
  about which part of the image the text is about, and it does not depend on a student
  that is still untrained in the first steps.
* **Scorer ``student-attention``** (:func:`attention_scores`): the log of the student's
  last-layer attention from its pooled [CLS] token, so that the softmax above gives back
  that attention renormalised over the scored tokens. :class:`StudentTap` obtains it from
  :class:`~vqa_ve.models.fusion.QAFusionModel` without touching the model's code: forward
  hooks keep the last layer's input and padding mask, and :meth:`StudentTap.pooled_attention`
  runs that layer's ``self_attn`` again on them with ``need_weights=True`` (no gradient,
  no dropout). (Inside ``nn.TransformerEncoder`` the layers call ``self_attn`` with
  ``need_weights=False``, and in eval mode the fused fast path never calls it at all, so a
  hook on ``self_attn`` itself would see no weights.)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqa_ve.models.fusion import QAFusionModel

#: Share of the softmax-normalised score mass the selection keeps by default.
DEFAULT_MASS = 0.5
#: The smallest attention probability whose log is taken (keeps log finite).
MIN_ATTENTION = 1e-12


def select_tokens(
    scores: torch.Tensor, valid: torch.Tensor, mass: float = DEFAULT_MASS, min_tokens: int = 1
) -> torch.Tensor:
    """Boolean ``[B, T]``: per row, the fewest highest-scored valid tokens whose softmax
    probabilities (over the valid tokens of the row) sum to at least ``mass``, at least
    ``min_tokens`` (or every valid token when there are fewer). Padding (``valid`` False)
    is never selected; ties keep the earlier token."""
    if scores.shape != valid.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and valid {tuple(valid.shape)} differ")
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass {mass} must be in (0, 1]")
    valid = valid.bool()
    masked = scores.detach().float().masked_fill(~valid, float("-inf"))  # [B, T]
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices  # [B, T]
    probs = torch.softmax(masked, dim=-1).nan_to_num(0.0)  # [B, T]; a row of no tokens -> 0
    sorted_probs = probs.gather(-1, order)  # [B, T], descending
    mass_before = sorted_probs.cumsum(-1) - sorted_probs  # [B, T]: mass of higher-ranked
    needed = (mass_before < mass).sum(-1)  # [B]: the token that crosses `mass` included
    count = valid.sum(-1)  # [B]
    k = torch.minimum(needed.clamp(min=min_tokens), count)  # [B]
    ranks = torch.arange(scores.shape[-1], device=scores.device)  # [T]
    keep_sorted = ranks[None, :] < k[:, None]  # [B, T], in rank order
    return torch.zeros_like(valid).scatter(-1, order, keep_sorted)  # [B, T]


def clip_relevance_scores(
    teacher_cells: torch.Tensor, text_embedding: torch.Tensor, logit_scale: float | torch.Tensor
) -> torch.Tensor:
    """``[B, R]``: ``logit_scale x cos(cell, text)`` of each teacher grid cell ``[B, R, E]``
    (in CLIP's joint space, see :func:`vqa_ve.distill.teacher.project_grid`) to the
    teacher's embedding ``[B, E]`` of the instance's text."""
    cells = F.normalize(teacher_cells.float(), dim=-1)  # [B, R, E]
    text = F.normalize(text_embedding.float(), dim=-1)  # [B, E]
    cosine = torch.einsum("bre,be->br", cells, text)  # [B, R]
    return cosine * torch.as_tensor(logit_scale, dtype=cosine.dtype, device=cosine.device)


def attention_scores(attention: torch.Tensor) -> torch.Tensor:
    """Selection scores ``[B, T]`` from attention probabilities ``[B, T]``: their log, so
    that :func:`select_tokens`' softmax renormalises the attention over the valid tokens."""
    return attention.float().clamp(min=MIN_ATTENTION).log()


class StudentTap:
    """Forward hooks on a :class:`QAFusionModel` that keep, for the last forward pass, the
    image projection's output, the last layer's input and padding mask and the encoder's
    output; they change no output. Use as a context manager around the forward pass::

        with StudentTap(model) as tap:
            parts, logits = model.losses(batch)
        image_tokens = tap.image_tokens("encoder-output")  # [N, R, d]
        attention = tap.pooled_attention()[:, -tap.num_regions:]  # [N, R]
    """

    def __init__(self, model: QAFusionModel) -> None:
        self.model = model
        self.num_regions = model.config.num_regions
        self.projected_image: torch.Tensor | None = None  # [N, R, d]
        self.layer_input: torch.Tensor | None = None  # [N, L+R, d]
        self.padding: torch.Tensor | None = None  # [N, L+R], bool or additive float
        self.hidden: torch.Tensor | None = None  # [N, L+R, d]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> StudentTap:
        last = self.model.encoder.layers[-1]
        self._handles = [
            self.model.image_projection.register_forward_hook(self._keep_projection),
            last.register_forward_pre_hook(self._keep_layer_input, with_kwargs=True),
            self.model.encoder.register_forward_hook(self._keep_hidden),
        ]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _keep_projection(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self.projected_image = output  # [N, R, d]

    def _keep_layer_input(self, module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        self.layer_input = args[0] if args else kwargs["src"]  # [N, L+R, d]
        self.padding = kwargs.get("src_key_padding_mask")  # [N, L+R] or None

    def _keep_hidden(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self.hidden = output  # [N, L+R, d]

    def image_tokens(self, which: str = "encoder-output") -> torch.Tensor:
        """The student's image tokens ``[N, R, d]`` of the last pass (with their graph):
        the encoder's outputs at the image positions, or the image projection's outputs."""
        if which == "image-projection":
            tokens = self.projected_image
        elif which == "encoder-output":
            tokens = None if self.hidden is None else self.hidden[:, -self.num_regions :]
        else:
            raise ValueError(f"student tokens {which!r}")
        if tokens is None:
            raise RuntimeError("no forward pass ran inside the StudentTap")
        return tokens

    @torch.no_grad()
    def pooled_attention(self) -> torch.Tensor:
        """``[N, L+R]``: the last layer's attention from the pooled token (position 0) to
        every token, averaged over heads, recomputed without dropout and without gradient;
        each row sums to 1 and padded keys get 0."""
        if self.layer_input is None:
            raise RuntimeError("no forward pass ran inside the StudentTap")
        layer = self.model.encoder.layers[-1]
        hidden = self.layer_input  # [N, L+R, d]
        if layer.norm_first:
            hidden = layer.norm1(hidden)  # [N, L+R, d]: what self_attn sees (pre-norm)
        query = hidden[:, :1]  # [N, 1, d]
        attention = layer.self_attn
        was_training = attention.training
        attention.train(False)  # the weights without attention dropout
        try:
            _, weights = attention(
                query,
                hidden,
                hidden,
                key_padding_mask=self.padding,
                need_weights=True,
                average_attn_weights=True,
            )  # [N, 1, L+R]
        finally:
            attention.train(was_training)
        return weights[:, 0]  # [N, L+R]
