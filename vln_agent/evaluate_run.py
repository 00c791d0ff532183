"""Evaluate a saved follower on a split and write everything a researcher looks at."""

from __future__ import annotations

import os
from pathlib import Path

from envs.episodes import load_episodes
from envs.evaluate import evaluate, save_predictions
from envs.fileio import write_json
from envs.graph import NavGraphs
from vln_agent.environments import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_INSTRUCTION_LENGTH, make_env
from vln_agent.evaluate import predict
from vln_agent.models.follower import load_follower
from vln_agent.provenance import open_checked_features


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    features: str | os.PathLike[str],
    split: str,
    out_dir: str | os.PathLike[str],
    batch_size: int = 64,
    maps: int = 4,
    *,
    feature_columns: int | None = None,
    allow_other_features: bool = False,
) -> dict[str, float] | None:
    """Write ``submission_{split}.json`` and, where the split has goals,
    ``metrics_{split}.json``, ``per_instruction_{split}.json`` and a few maps.

    ``features`` must be what the follower was trained on (:mod:`vln_agent.provenance`):
    the same width (``feature_columns``: the first N columns of a wider file) and, where
    both record one, the same encoder (``allow_other_features``: another one, with a
    warning). Returns the summary metrics (None for a split without goals, like R2R test).
    """
    model, tokenizer, payload = load_follower(checkpoint)
    train_config = payload.get("train_config", {})
    episodes = load_episodes(data_dir, split)
    with open_checked_features(
        features,
        payload,
        checkpoint,
        feature_columns=feature_columns,
        allow_other=allow_other_features,
    ) as store:
        env = make_env(
            data_dir,
            store,
            episodes,
            tokenizer,
            min(batch_size, len(episodes)),
            feature_dim=model.config.feature_size,
            max_instruction_length=train_config.get(
                "max_instruction_length", DEFAULT_MAX_INSTRUCTION_LENGTH
            ),
            max_actions=train_config.get("max_actions", DEFAULT_MAX_ACTIONS),
        )
        predictions = predict(model, env, episodes)
        env.close()
    out_dir = Path(out_dir)
    submission = out_dir / f"submission_{split}.json"
    save_predictions(submission, predictions)
    if any(len(e.path) < 2 for e in episodes):
        return None
    graphs = NavGraphs(data_dir)
    result = evaluate(graphs, episodes, predictions, source=str(submission))
    write_json(out_dir / f"metrics_{split}.json", result.summary)
    write_json(out_dir / f"per_instruction_{split}.json", result.per_instruction)
    _draw_maps(data_dir, episodes[:maps], submission, out_dir / "maps")
    return result.summary


def _draw_maps(data_dir, episodes, submission: Path, out_dir: Path) -> None:
    from envs.maps import draw_map

    for episode in episodes:
        draw_map(
            data_dir,
            episode.scan,
            out_dir / f"{episode.instr_id}.png",
            path_id=episode.path_id,
            predictions=submission,
            instr_id=episode.instr_id,
        )
