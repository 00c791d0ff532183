"""Losses of EnvDrop's follower, each returning its parts by name.

- Imitation (teacher forcing): cross entropy of the teacher's action, summed over steps and
  agents that are still navigating, divided by the batch size (EnvDrop's normalisation).
- A2C (Mnih et al. 2016) on sampled rollouts with EnvDrop's shaped reward: discounted
  returns bootstrapped with the critic where the episode did not end, advantage
  ``R - V`` (no gradient into the policy through V), ``0.5 (R - V)^2`` critic loss and an
  entropy bonus; summed over valid steps and divided by their number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def imitation_loss(
    logits: list[torch.Tensor], targets: list[torch.Tensor], active: list[torch.Tensor]
) -> torch.Tensor:
    """Sum over steps of CE(logits [B, A], target [B]) on active agents, divided by B."""
    batch = logits[0].shape[0]
    total = logits[0].new_zeros(())
    for step_logits, target, alive in zip(logits, targets, active, strict=True):
        ce = F.cross_entropy(step_logits, target, reduction="none")  # [B]
        total = total + ce.masked_fill(~alive, 0.0).sum()
    return total / batch


def discounted_returns(
    rewards: torch.Tensor, masks: torch.Tensor, bootstrap: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Returns [T, B] of rewards [T, B] (0 after an episode ended), bootstrapped by [B]."""
    returns = torch.empty_like(rewards)
    running = bootstrap
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = running * gamma + rewards[t]
        returns[t] = running
    return returns * masks


def a2c_loss(
    log_probs: torch.Tensor,
    entropies: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    masks: torch.Tensor,
    bootstrap: torch.Tensor,
    gamma: float = 0.9,
    critic_weight: float = 0.5,
    entropy_weight: float = 0.01,
) -> dict[str, torch.Tensor]:
    """EnvDrop's A2C loss parts.

    Args:
        log_probs, entropies, values: [T, B] of the taken actions (with gradients).
        rewards, masks: [T, B]; mask 1 where the agent acted at step t.
        bootstrap: [B] critic value after the last step where the episode did not end, else 0.
    """
    returns = discounted_returns(rewards, masks, bootstrap.detach(), gamma)  # [T, B]
    advantage = (returns - values).detach()
    count = masks.sum().clamp(min=1.0)
    return {
        "policy_loss": (-log_probs * advantage * masks).sum() / count,
        "critic_loss": critic_weight * ((returns - values) ** 2 * masks).sum() / count,
        "entropy_loss": -entropy_weight * (entropies * masks).sum() / count,
    }
