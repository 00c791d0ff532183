"""EnvDrop's losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from vln_agent.losses import a2c_loss, discounted_returns, imitation_loss
from vln_agent.train import action_log_probs

NEG_INF = float("-inf")


def log_softmax_at(row: list[float], index: int) -> float:
    """log softmax(row)[index], by hand (-inf entries are unavailable actions)."""
    total = sum(math.exp(x) for x in row if x != NEG_INF)
    return row[index] - math.log(total)


def test_imitation_loss_sums_active_steps_and_divides_by_the_batch():
    step0 = [[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [3.0, NEG_INF, 1.0]]
    step1 = [[0.2, NEG_INF, NEG_INF], [1.0, -1.0, 2.0], [9.0, 9.0, 9.0]]
    targets = [[1, 2, 0], [0, 2, 1]]
    active = [[True, True, True], [True, True, False]]  # agent 2 ended after step 0
    loss = imitation_loss(
        [torch.tensor(step0), torch.tensor(step1)],
        [torch.tensor(t) for t in targets],
        [torch.tensor(a) for a in active],
    )
    expected = 0.0
    for logits, target, alive in zip((step0, step1), targets, active, strict=True):
        for agent in range(3):
            if alive[agent]:
                expected -= log_softmax_at(logits[agent], target[agent])
    expected /= 3  # the batch size, not the 5 active steps
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_imitation_loss_ignores_inactive_agents():
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(4, 5, generator=generator, requires_grad=True) for _ in range(3)]
    targets = [torch.tensor([0, 1, 2, 3])] * 3
    active = [torch.tensor([True, True, True, True]), torch.tensor([True, False, True, False])]
    active.append(torch.tensor([False, False, True, False]))
    loss = imitation_loss(logits, targets, active)
    changed = [lg.detach().clone() for lg in logits]
    changed[1][1] += 100.0  # an agent that no longer acts
    changed[2][[0, 1, 3]] = torch.randn(3, 5, generator=generator)
    assert imitation_loss(changed, targets, active).item() == pytest.approx(loss.item())
    loss.backward()
    assert torch.equal(logits[1].grad[1], torch.zeros(5))
    assert torch.equal(logits[2].grad[[0, 1, 3]], torch.zeros(3, 5))
    assert logits[2].grad[2].abs().sum() > 0


def test_discounted_returns_by_hand():
    # agent 0 is cut after 3 steps (bootstrapped by the critic's 0.5); agent 1 stopped at
    # step 1 (mask 0 afterwards, no bootstrap)
    rewards = torch.tensor([[1.0, -1.0], [-1.0, 2.0], [-2.0, 0.0]])  # [T, B]
    masks = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    bootstrap = torch.tensor([0.5, 0.0])
    returns = discounted_returns(rewards, masks, bootstrap, gamma=0.9)
    r2 = -2.0 + 0.9 * 0.5  # -1.55
    r1 = -1.0 + 0.9 * r2  # -2.395
    r0 = 1.0 + 0.9 * r1  # -1.1555
    expected = torch.tensor([[r0, -1.0 + 0.9 * 2.0], [r1, 2.0], [r2, 0.0]])
    torch.testing.assert_close(returns, expected)


def test_discounted_returns_gamma_zero_is_the_reward():
    rewards = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    masks = torch.ones(2, 2)
    returns = discounted_returns(rewards, masks, torch.tensor([10.0, 10.0]), gamma=0.0)
    torch.testing.assert_close(returns, rewards)


def a2c_example():
    """A 2-step, 3-agent rollout: agent 0 is cut (bootstrap 0.5), agent 1 stops at step 1,
    agent 2 stops at step 0 (its step-1 entries must not count)."""
    return dict(
        log_probs=torch.tensor([[-0.1, -0.2, -0.3], [-0.4, -0.5, -0.6]], requires_grad=True),
        entropies=torch.tensor([[1.0, 0.9, 0.8], [0.7, 0.6, 0.5]], requires_grad=True),
        values=torch.tensor([[1.0, -0.5, 1.5], [2.0, 0.5, 9.0]], requires_grad=True),
        rewards=torch.tensor([[1.0, -1.0, 2.0], [2.0, 0.0, 0.0]]),
        masks=torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
        bootstrap=torch.tensor([0.5, 0.0, 0.0]),
    )


def test_a2c_loss_parts_by_hand():
    example = a2c_example()
    parts = a2c_loss(**example, gamma=0.9, critic_weight=0.5, entropy_weight=0.01)
    assert set(parts) == {"policy_loss", "critic_loss", "entropy_loss"}
    # returns: agent 0: R1 = 2 + 0.9 * 0.5 = 2.45, R0 = 1 + 0.9 * 2.45 = 3.205;
    # agent 1: R1 = 0, R0 = -1; agent 2: R0 = 2.
    # advantages R - V on the 5 valid steps: 2.205, -0.5, 0.5 (step 0); 0.45, -0.5 (step 1)
    advantages = [2.205, -0.5, 0.5, 0.45, -0.5]
    log_probs = [-0.1, -0.2, -0.3, -0.4, -0.5]
    policy = -sum(lp * a for lp, a in zip(log_probs, advantages, strict=True)) / 5  # 0.0401
    critic = 0.5 * sum(a * a for a in advantages) / 5  # 0.5814525
    entropy = -0.01 * (1.0 + 0.9 + 0.8 + 0.7 + 0.6) / 5  # -0.008
    assert parts["policy_loss"].item() == pytest.approx(policy, rel=1e-5)
    assert parts["critic_loss"].item() == pytest.approx(critic, rel=1e-5)
    assert parts["entropy_loss"].item() == pytest.approx(entropy, rel=1e-5)
    assert policy == pytest.approx(0.0401) and critic == pytest.approx(0.5814525)


def test_a2c_gradients_keep_policy_and_critic_apart():
    example = a2c_example()
    parts = a2c_loss(**example)
    parts["policy_loss"].backward()
    assert example["values"].grad is None  # the advantage is a constant for the policy
    expected = -torch.tensor([[2.205, -0.5, 0.5], [0.45, -0.5, 0.0]]) / 5
    torch.testing.assert_close(example["log_probs"].grad, expected)
    parts["critic_loss"].backward()
    # d/dV 0.5 (R - V)^2 / 5 = (V - R) / 5 on valid steps, 0 on agent 2's step 1
    expected_values = torch.tensor([[-2.205, 0.5, -0.5], [-0.45, 0.5, 0.0]]) / 5
    torch.testing.assert_close(example["values"].grad, expected_values)


def test_a2c_bootstrap_carries_no_gradient():
    example = a2c_example()
    example["bootstrap"] = torch.tensor([0.5, 0.0, 0.0], requires_grad=True)
    sum(a2c_loss(**example).values()).backward()
    assert example["bootstrap"].grad is None


def test_action_log_probs_of_masked_logits():
    logits = torch.tensor([[0.0, 1.0, NEG_INF, 2.0], [5.0, NEG_INF, NEG_INF, NEG_INF]])
    log_p, entropy = action_log_probs(logits, torch.tensor([3, 0]))
    assert log_p[0].item() == pytest.approx(log_softmax_at(logits[0].tolist(), 3))
    assert log_p[1].item() == pytest.approx(0.0)
    probs = [math.exp(log_softmax_at(logits[0].tolist(), i)) for i in (0, 1, 3)]
    assert entropy[0].item() == pytest.approx(-sum(p * math.log(p) for p in probs), rel=1e-6)
    assert entropy[1].item() == pytest.approx(0.0)  # one choice: no uncertainty
    assert torch.isfinite(entropy).all()


def test_action_log_probs_gradients_are_finite_with_masks():
    logits = torch.tensor(
        [[0.0, 1.0, NEG_INF, 2.0], [5.0, NEG_INF, NEG_INF, NEG_INF]], requires_grad=True
    )
    log_p, entropy = action_log_probs(logits, torch.tensor([1, 0]))
    (log_p.sum() + entropy.sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2] == 0 and torch.equal(logits.grad[1], torch.zeros(4))
