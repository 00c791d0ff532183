"""Rollouts of the follower in the batched R2R environment.

One rollout runs a batch of episodes to the end in a :class:`envs.gym_env.R2RVectorEnv`
with ``autoreset_mode=DISABLED`` (EnvDrop's batch-synchronous way): every agent starts,
finished agents are offered only STOP until all have ended. The feedback decides which
action is taken — ``teacher`` (the shortest-path teacher's, for imitation), ``sample``
(drawn from the policy, for A2C) or ``argmax`` (evaluation) — and the rollout keeps what
the losses need, step by step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from envs.gym_env import R2RVectorEnv
from vln_agent.models.follower import DecoderState, Follower

FEEDBACKS = ("teacher", "sample", "argmax")


@dataclass
class StepInputs:
    """One observation as model inputs (tensors on the model's device)."""

    tokens: torch.Tensor  # [B, L]
    lengths: torch.Tensor  # [B]
    views: torch.Tensor  # [B, 36, D + 128]
    candidates: torch.Tensor  # [B, C + 1, D + 128], STOP (zeros) at 0
    mask: torch.Tensor  # [B, C + 1] bool, True = allowed


def to_inputs(
    obs: dict[str, np.ndarray],
    device: torch.device,
    feature_mask: torch.Tensor | None = None,
    tokens: np.ndarray | None = None,
) -> StepInputs:
    """Convert a batched observation; ``feature_mask`` [D] scales the visual channels
    (EnvDrop's environmental dropout), ``tokens`` replaces the instruction (back-translation)."""
    views = torch.from_numpy(obs["view_features"]).to(device)  # [B, 36, D]
    candidates = torch.from_numpy(obs["candidate_features"]).to(device)  # [B, C, D + 128]
    if feature_mask is not None:
        views = views * feature_mask
        dim = feature_mask.shape[0]
        candidates = torch.cat([candidates[..., :dim] * feature_mask, candidates[..., dim:]], -1)
    angles = torch.from_numpy(obs["view_angle_features"]).to(device)  # [B, 36, 128]
    stop = candidates.new_zeros(candidates.shape[0], 1, candidates.shape[2])
    words = obs["instruction"] if tokens is None else tokens
    lengths = obs["instruction_length"] if tokens is None else (tokens > 0).sum(1)
    return StepInputs(
        tokens=torch.from_numpy(np.ascontiguousarray(words)).to(device),
        lengths=torch.from_numpy(np.asarray(lengths)).to(device),
        views=torch.cat([views, angles], dim=-1),
        candidates=torch.cat([stop, candidates], dim=1),
        mask=torch.from_numpy(obs["action_mask"].astype(bool)).to(device),
    )


@dataclass
class Rollout:
    """What a rollout recorded; lists have one entry per step, tensors are [B]."""

    logits: list[torch.Tensor] = field(default_factory=list)  # [B, C + 1] each
    actions: list[torch.Tensor] = field(default_factory=list)
    teacher: list[torch.Tensor] = field(default_factory=list)
    active: list[torch.Tensor] = field(default_factory=list)  # bool: agent acted
    values: list[torch.Tensor] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    #: [B] critic value of the state after the last action where the episode was cut.
    bootstrap: torch.Tensor | None = None
    #: instr_id -> trajectory / metrics of every agent.
    trajectories: dict[str, list[list[Any]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.actions)


def choose_actions(
    logits: torch.Tensor, feedback: str, teacher: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """The action [B] each agent takes under ``feedback``."""
    if feedback == "teacher":
        return teacher
    if feedback == "argmax":
        return logits.argmax(dim=1)
    probs = torch.softmax(logits, dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def rollout(
    model: Follower,
    env: R2RVectorEnv,
    instr_ids: Sequence[str],
    feedback: str,
    feature_mask: torch.Tensor | None = None,
    instructions: np.ndarray | None = None,
    generator: torch.Generator | None = None,
    with_values: bool = False,
) -> Rollout:
    """Run one batch of episodes (one per agent) to the end.

    ``instructions`` [B, L] replaces the episodes' own instructions (back-translation);
    ``with_values`` also evaluates the critic at every step (for A2C).
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be one of {FEEDBACKS}, got {feedback!r}")
    device = next(model.parameters()).device
    obs, info = env.reset(options={"instr_ids": list(instr_ids)})
    inputs = to_inputs(obs, device, feature_mask, instructions)
    contexts, context_mask, state = model.encode(inputs.tokens, inputs.lengths)
    done = np.zeros(env.num_envs, dtype=bool)
    cut = np.zeros(env.num_envs, dtype=bool)  # episodes ended by the action limit
    out = Rollout()
    while not done.all():
        logits, state, tilde = model.step(
            state,
            inputs.views,
            inputs.candidates,
            inputs.mask,
            contexts,
            context_mask,
            already_dropped=feature_mask is not None,
        )
        teacher = torch.from_numpy(np.maximum(info["teacher_action"], 0)).to(device)
        action = choose_actions(logits.detach(), feedback, teacher, generator)
        out.logits.append(logits)
        out.actions.append(action)
        out.teacher.append(teacher)
        out.active.append(torch.from_numpy(~done).to(device))
        if with_values:
            out.values.append(model.value(tilde))
        state = model.after_action(state, inputs.candidates, action)
        obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        out.rewards.append(reward.astype(np.float32))
        _collect_finished(out, info)
        done = terminated | truncated
        inputs = to_inputs(obs, device, feature_mask, instructions)
        cut = truncated & ~terminated
    if with_values:
        out.bootstrap = _bootstrap(model, state, inputs, contexts, context_mask, cut, feature_mask)
    return out


def _bootstrap(model, state: DecoderState, inputs, contexts, context_mask, cut, feature_mask):
    """Critic value of the final state of agents whose episode was cut short (else 0)."""
    if not cut.any():
        return torch.zeros(len(cut), device=contexts.device)
    _, _, tilde = model.step(
        state,
        inputs.views,
        inputs.candidates,
        inputs.mask,
        contexts,
        context_mask,
        already_dropped=feature_mask is not None,
    )
    return model.value(tilde).detach() * torch.from_numpy(cut).to(contexts.device)


def _collect_finished(out: Rollout, info: dict[str, Any]) -> None:
    if "_trajectory" not in info:
        return
    for agent in np.flatnonzero(info["_trajectory"]):
        instr_id = str(info["instr_id"][agent])
        out.trajectories[instr_id] = info["trajectory"][agent]
        if info["_metrics"][agent]:
            out.metrics[instr_id] = {k: float(v[agent]) for k, v in info["metrics"].items()}
