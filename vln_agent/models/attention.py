"""Soft-dot attention (Luong et al. 2015), the building block of EnvDrop's models."""

from __future__ import annotations

import torch
from torch import nn


class SoftDotAttention(nn.Module):
    """Attend over ``context`` with a query; optionally mix the result back into the query.

    ``score_j = context_j . W_in query``; the attended vector is ``sum_j softmax(score)_j
    context_j``; ``tilde = tanh(W_out [attended; query])`` is the attention-refined query.
    """

    def __init__(self, query_dim: int, context_dim: int) -> None:
        super().__init__()
        self.linear_in = nn.Linear(query_dim, context_dim, bias=False)
        self.linear_out = nn.Linear(query_dim + context_dim, query_dim, bias=False)

    def scores(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unnormalised scores [B, N] of query [B, Q] against context [B, N, C].

        ``mask`` [B, N] is True where an entry must be ignored (its score becomes -inf).
        """
        projected = self.linear_in(query).unsqueeze(2)  # [B, C, 1]
        scores = torch.bmm(context, projected).squeeze(2)  # [B, N]
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        return scores

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (attended [B, C], tilde [B, Q], weights [B, N])."""
        weights = torch.softmax(self.scores(query, context, mask), dim=1)  # [B, N]
        attended = torch.bmm(weights.unsqueeze(1), context).squeeze(1)  # [B, C]
        tilde = torch.tanh(self.linear_out(torch.cat([attended, query], dim=1)))  # [B, Q]
        return attended, tilde, weights
