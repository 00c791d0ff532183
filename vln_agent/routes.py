"""Routes as the speaker sees them: teacher rollouts recorded step by step.

A route is, at every step of the shortest-path teacher, the panorama the agent sees
``[36, D + 128]`` and the feature of the candidate it takes ``[D + 128]`` (all zeros for the
final STOP). Both the speaker's training and back-translation read routes this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from envs.gym_env import R2RVectorEnv
from vln_agent.rollout import to_inputs


@dataclass
class RouteBatch:
    """Routes of a batch of episodes, padded to the longest."""

    actions: torch.Tensor  # [B, T, D + 128]
    panoramas: torch.Tensor  # [B, T, 36, D + 128]
    mask: torch.Tensor  # [B, T] True = padding
    tokens: np.ndarray  # [B, L] the episodes' own instructions


def teacher_routes(
    env: R2RVectorEnv,
    instr_ids: Sequence[str],
    device: torch.device,
    feature_mask: torch.Tensor | None = None,
) -> RouteBatch:
    """Follow the teacher in ``env`` for ``instr_ids`` and record each step."""
    obs, info = env.reset(options={"instr_ids": list(instr_ids)})
    tokens = obs["instruction"].copy()
    actions, panoramas, padding = [], [], []
    done = np.zeros(env.num_envs, dtype=bool)
    rows = torch.arange(env.num_envs, device=device)
    while not done.all():
        inputs = to_inputs(obs, device, feature_mask)
        teacher = torch.from_numpy(np.maximum(info["teacher_action"], 0)).to(device)
        actions.append(inputs.candidates[rows, teacher])  # [B, D + 128]
        panoramas.append(inputs.views)  # [B, 36, D + 128]
        padding.append(torch.from_numpy(done.copy()).to(device))
        obs, _, terminated, truncated, info = env.step(teacher.cpu().numpy())
        done = terminated | truncated
    return RouteBatch(
        actions=torch.stack(actions, dim=1),
        panoramas=torch.stack(panoramas, dim=1),
        mask=torch.stack(padding, dim=1),
        tokens=tokens,
    )


def environment_dropout(feature_size: int, p: float, device: torch.device) -> torch.Tensor:
    """EnvDrop's environmental dropout: one mask [D] over feature channels for a whole batch.

    Dropping the same channels in every view of every viewpoint mimics a new environment;
    the mask is shared by the speaker (which describes the route) and the follower (which
    learns from the description).
    """
    return torch.nn.functional.dropout(torch.ones(feature_size, device=device), p, training=True)
