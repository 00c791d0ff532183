"""Evaluate a follower on a split: argmax rollouts over every instruction, official metrics.

The metrics come from :func:`envs.evaluate.evaluate` — the same code as ``clipvil
eval-r2r`` — applied to the trajectories in the official submission format.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from envs.episodes import Episode
from envs.evaluate import Predictions, evaluate
from envs.graph import NavGraphs
from envs.gym_env import R2RVectorEnv
from vln_agent.models.follower import Follower
from vln_agent.rollout import rollout


@torch.no_grad()
def predict(model: Follower, env: R2RVectorEnv, episodes: Sequence[Episode]) -> Predictions:
    """Greedy trajectories for every episode, in batches of the env's size."""
    was_training = model.training
    model.eval()
    predictions: Predictions = {}
    ids = [e.instr_id for e in episodes]
    batch = env.num_envs
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        padded = chunk + [chunk[0]] * (batch - len(chunk))  # a short last batch repeats
        result = rollout(model, env, padded, "argmax")
        for instr_id in chunk:
            predictions[instr_id] = [tuple(step) for step in result.trajectories[instr_id]]
    model.train(was_training)
    return predictions


def evaluate_follower(
    model: Follower, env: R2RVectorEnv, graphs: NavGraphs, episodes: Sequence[Episode], name: str
) -> tuple[Predictions, dict[str, float]]:
    """Predictions and the official summary metrics of ``model`` on ``episodes``."""
    predictions = predict(model, env, episodes)
    summary = evaluate(graphs, list(episodes), predictions, source=name).summary
    return predictions, summary
