"""The no-learning baselines on the real data (the demo is tested in test_demo.py)."""

from __future__ import annotations

from envs.episodes import load_episodes
from envs.evaluate import evaluate
from envs.graph import NavGraphs
from vln_agent.baselines import random_walk_predictions


def test_random_walk_is_valid_and_deterministic(real_data_dir):
    graphs = NavGraphs(real_data_dir)
    episodes = load_episodes(real_data_dir, "val_seen")[:150]
    first = random_walk_predictions(graphs, episodes, steps=5, seed=3, batch_size=64)
    assert first == random_walk_predictions(graphs, episodes, steps=5, seed=3, batch_size=64)
    assert first != random_walk_predictions(graphs, episodes, steps=5, seed=4, batch_size=64)
    for episode in episodes:
        trajectory = first[episode.instr_id]
        assert trajectory[0][0] == episode.start
        moves = [
            a for (a, _, _), (b, _, _) in zip(trajectory, trajectory[1:], strict=False) if a != b
        ]
        assert len(moves) == 5  # every move changes viewpoint
    # evaluate() validates every move is a graph edge; a random walk rarely succeeds.
    summary = evaluate(graphs, episodes, first, "random walk").summary
    assert summary["num_instructions"] == 150
    assert summary["sr"] < 0.3 and summary["tl"] > 5.0
