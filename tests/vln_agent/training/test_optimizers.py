"""OptimizerChain: several optimizers stepped as one, saved and restored exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vln_agent.training.optimizers import OptimizerChain


def chain(model: nn.Sequential) -> OptimizerChain:
    adamw = torch.optim.AdamW(model[0].parameters(), lr=1e-2)
    sgd = torch.optim.SGD(model[1].parameters(), lr=0.1, momentum=0.9)
    return OptimizerChain([adamw, sgd])


def step(model: nn.Sequential, optimizer: OptimizerChain, seed: int) -> None:
    torch.manual_seed(seed)
    optimizer.zero_grad()
    model(torch.randn(4, 3)).pow(2).sum().backward()
    optimizer.step()


def test_each_part_steps_its_own_parameters_with_its_own_rule():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    optimizer = chain(model)
    before = [p.detach().clone() for p in model.parameters()]
    step(model, optimizer, 1)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 0.1]
    assert "momentum_buffer" in optimizer.optimizers[1].state[model[1].weight]
    optimizer.param_groups[1]["lr"] = 0.5  # a group of the chain is its optimizer's group
    assert optimizer.optimizers[1].param_groups[0]["lr"] == 0.5


def test_a_restored_chain_continues_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    twin = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    optimizer = chain(model)
    step(model, optimizer, 1)
    twin.load_state_dict(model.state_dict())
    restored = chain(twin)
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as read from a file
    for seed in (2, 3):
        step(model, optimizer, seed)
        step(twin, restored, seed)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters(), strict=True)
    )


def test_bad_chains_and_states_are_refused():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="two optimizers"):
        OptimizerChain(
            [
                torch.optim.SGD(model.parameters(), lr=1),
                torch.optim.SGD(model[0].parameters(), lr=1),
            ]
        )
    with pytest.raises(ValueError, match="at least one"):
        OptimizerChain([])
    with pytest.raises(ValueError, match="another chain"):
        chain(model).load_state_dict({"chain": [{}]})
