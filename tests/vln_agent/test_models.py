"""The follower and speaker models: shapes, action masks, feature dropout, overfitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from envs.constants import ANGLE_FEATURE_SIZE, NUM_VIEWS
from envs.gym_env import STOP_ACTION, R2RVectorEnv
from vln_agent.models import Follower, FollowerConfig, Speaker, SpeakerConfig
from vln_agent.rollout import choose_actions, to_inputs

BATCH, WORDS, CANDIDATES, FEATURES, HIDDEN, VOCAB = 4, 7, 5, 16, 32, 20
VISUAL = FEATURES + ANGLE_FEATURE_SIZE
SPEAKER_VOCAB, EOS, PAD = 12, 2, 0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_follower(**overrides) -> Follower:
    torch.manual_seed(0)
    config = FollowerConfig(
        vocab_size=VOCAB,
        feature_size=FEATURES,
        word_embedding_size=16,
        hidden_size=HIDDEN,
        action_embedding_size=8,
        **overrides,
    )
    return Follower(config)


def random_inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch of instructions (lengths 7, 5, 3, 1), panoramas and candidates."""
    lengths = torch.tensor([WORDS, 5, 3, 1])
    tokens = torch.randint(4, VOCAB, (BATCH, WORDS), generator=generator)  # [B, L]
    tokens[torch.arange(WORDS)[None, :] >= lengths[:, None]] = 0
    views = torch.randn(BATCH, NUM_VIEWS, VISUAL, generator=generator)  # [B, 36, D + 128]
    candidates = torch.randn(BATCH, CANDIDATES + 1, VISUAL, generator=generator)
    candidates[:, 0] = 0.0  # STOP
    mask = torch.ones(BATCH, CANDIDATES + 1, dtype=torch.bool)  # [B, C + 1]
    mask[0, 3:] = False
    mask[1, 1:] = False  # STOP only
    mask[2, 1::2] = False
    return dict(tokens=tokens, lengths=lengths, views=views, candidates=candidates, mask=mask)


def first_step(model: Follower, inputs: dict[str, torch.Tensor], **kwargs):
    contexts, context_mask, state = model.encode(inputs["tokens"], inputs["lengths"])
    logits, new_state, tilde = model.step(
        state,
        inputs["views"],
        inputs["candidates"],
        inputs["mask"],
        contexts,
        context_mask,
        **kwargs,
    )
    return contexts, context_mask, state, logits, new_state, tilde


def test_follower_shapes():
    model = tiny_follower().eval()
    inputs = random_inputs(torch.Generator().manual_seed(1))
    contexts, context_mask, state, logits, new_state, tilde = first_step(model, inputs)
    assert contexts.shape == (BATCH, WORDS, HIDDEN)
    assert context_mask.tolist()[3] == [False] + [True] * (WORDS - 1)
    assert state.hidden.shape == state.cell.shape == (BATCH, HIDDEN)
    assert torch.equal(state.previous_angle, torch.zeros(BATCH, ANGLE_FEATURE_SIZE))
    assert logits.shape == (BATCH, CANDIDATES + 1)
    assert new_state.hidden.shape == (BATCH, HIDDEN)
    assert tilde.shape == (BATCH, HIDDEN)
    assert model.value(tilde).shape == (BATCH,)


def test_padding_words_do_not_change_the_encoding():
    model = tiny_follower().eval()
    inputs = random_inputs(torch.Generator().manual_seed(2))
    noisy = inputs["tokens"].clone()
    noisy[3, 1:] = 9  # words past the length of instruction 3
    a = model.encode(inputs["tokens"], inputs["lengths"])
    b = model.encode(noisy, inputs["lengths"])
    torch.testing.assert_close(a[2].hidden, b[2].hidden)
    torch.testing.assert_close(a[0][:, :1], b[0][:, :1])


def test_masked_candidates_get_minus_infinity_and_are_never_chosen():
    model = tiny_follower().eval()
    inputs = random_inputs(torch.Generator().manual_seed(3))
    inputs["candidates"][~inputs["mask"]] = 1e3  # tempting features behind the mask
    logits = first_step(model, inputs)[3].detach()
    mask = inputs["mask"]
    assert torch.isneginf(logits[~mask]).all()
    assert torch.isfinite(logits[mask]).all()
    teacher = torch.zeros(BATCH, dtype=torch.long)
    argmax = choose_actions(logits, "argmax", teacher, None)
    assert mask[torch.arange(BATCH), argmax].all()
    assert argmax[1] == STOP_ACTION  # STOP is all agent 1 may do
    generator = torch.Generator().manual_seed(0)
    many = logits.repeat(500, 1)  # [500 B, C + 1]
    sampled = choose_actions(many, "sample", teacher.repeat(500), generator)
    assert mask.repeat(500, 1)[torch.arange(500 * BATCH), sampled].all()
    assert set(sampled[1::BATCH].tolist()) == {STOP_ACTION}
    # the samples explore every allowed action of agent 0 (STOP, 1, 2)
    assert set(sampled[0::BATCH].tolist()) == {0, 1, 2}
    assert torch.equal(choose_actions(logits, "teacher", teacher + 1, None), teacher + 1)


def test_stop_is_candidate_zero_of_a_real_observation(tiny_world):
    env = R2RVectorEnv(
        BATCH,
        autoreset_mode=AutoresetMode.DISABLED,
        data_dir=tiny_world.data_dir,
        features=tiny_world.features,
        split="val_seen",
    )
    obs, info = env.reset(seed=0)
    inputs = to_inputs(obs, torch.device("cpu"))
    cands = obs["candidate_features"].shape[1]
    assert inputs.candidates.shape == (BATCH, cands + 1, FEATURES + ANGLE_FEATURE_SIZE)
    assert torch.equal(inputs.candidates[:, 0], torch.zeros(BATCH, VISUAL))
    assert torch.equal(inputs.candidates[:, 1:], torch.from_numpy(obs["candidate_features"]))
    assert inputs.mask[:, STOP_ACTION].all()
    assert torch.equal(inputs.mask, torch.from_numpy(obs["action_mask"].astype(bool)))
    # views: the panorama features, then the angle features
    assert torch.equal(inputs.views[..., :FEATURES], torch.from_numpy(obs["view_features"]))
    assert torch.equal(inputs.views[..., FEATURES:], torch.from_numpy(obs["view_angle_features"]))
    # a move to a real candidate (never STOP) is what the teacher asks at the start
    assert (info["teacher_action"] > STOP_ACTION).all()
    env.close()


def test_environmental_dropout_mask_scales_only_visual_channels(tiny_world):
    env = R2RVectorEnv(
        2,
        autoreset_mode=AutoresetMode.DISABLED,
        data_dir=tiny_world.data_dir,
        features=tiny_world.features,
        split="val_seen",
    )
    obs, _ = env.reset(seed=0)
    env.close()
    feature_mask = torch.zeros(FEATURES)
    feature_mask[::2] = 2.0  # [D]
    plain = to_inputs(obs, torch.device("cpu"))
    dropped = to_inputs(obs, torch.device("cpu"), feature_mask)
    torch.testing.assert_close(
        dropped.views[..., :FEATURES],
        plain.views[..., :FEATURES] * 2 * (torch.arange(FEATURES) % 2 == 0),
    )
    assert torch.equal(dropped.views[..., FEATURES:], plain.views[..., FEATURES:])
    assert torch.equal(dropped.candidates[..., FEATURES:], plain.candidates[..., FEATURES:])
    assert (dropped.candidates[..., 1:FEATURES:2] == 0).all()


def test_feature_dropout_touches_only_the_visual_channels():
    model = tiny_follower(feature_dropout=0.5).train()
    features = torch.rand(BATCH, NUM_VIEWS, VISUAL) + 1.0  # [B, 36, D + 128], no zeros
    dropped = model.drop_visual(features)
    assert torch.equal(dropped[..., FEATURES:], features[..., FEATURES:])  # angles kept
    visual, original = dropped[..., :FEATURES], features[..., :FEATURES]
    zeroed = visual == 0
    assert 0.3 < zeroed.float().mean() < 0.7
    torch.testing.assert_close(visual[~zeroed], original[~zeroed] * 2.0)
    assert torch.equal(model.eval().drop_visual(features), features)


def test_step_applies_feature_dropout_unless_already_dropped():
    model = tiny_follower(dropout=0.0, feature_dropout=0.9).train()
    inputs = random_inputs(torch.Generator().manual_seed(4))
    kept_a = first_step(model, inputs, already_dropped=True)[3]
    kept_b = first_step(model, inputs, already_dropped=True)[3]
    assert torch.equal(kept_a, kept_b)
    dropped = first_step(model, inputs)[3]
    assert not torch.equal(dropped, kept_a)


def test_after_action_remembers_the_angle_of_the_chosen_candidate():
    model = tiny_follower().eval()
    inputs = random_inputs(torch.Generator().manual_seed(5))
    _, _, _, _, state, _ = first_step(model, inputs)
    action = torch.tensor([2, 0, 4, 1])
    after = model.after_action(state, inputs["candidates"], action)
    for agent, chosen in enumerate(action.tolist()):
        expected = inputs["candidates"][agent, chosen, FEATURES:]  # [128]
        assert torch.equal(after.previous_angle[agent], expected)
    assert torch.equal(after.previous_angle[1], torch.zeros(ANGLE_FEATURE_SIZE))  # STOP
    assert after.hidden is state.hidden and after.cell is state.cell


# ------------------------------------------------------------------------------ speaker
def tiny_routes(generator: torch.Generator):
    """Four routes of 4, 3, 2 and 4 steps and their instructions (ending in EOS, 0-padded)."""
    steps = torch.tensor([4, 3, 2, 4])
    actions = torch.randn(BATCH, 4, VISUAL, generator=generator)  # [B, T, D + 128]
    panoramas = torch.randn(BATCH, 4, NUM_VIEWS, VISUAL, generator=generator)
    route_mask = torch.arange(4)[None, :] >= steps[:, None]  # [B, T] True = padding
    rows = [[5, 6, 7, 8, 9, EOS], [10, 4, EOS], [11, 11, 7, 6, 5, 4, EOS], [9, 8, EOS]]
    tokens = torch.zeros(BATCH, max(map(len, rows)), dtype=torch.long)  # [B, L]
    for row, words in enumerate(rows):
        tokens[row, : len(words)] = torch.tensor(words)
    return actions, panoramas, route_mask, tokens


def test_speaker_overfits_one_batch_and_generates_until_eos():
    torch.manual_seed(0)
    config = SpeakerConfig(
        vocab_size=SPEAKER_VOCAB,
        feature_size=FEATURES,
        word_embedding_size=16,
        hidden_size=HIDDEN,
        dropout=0.0,
        feature_dropout=0.0,
    )
    speaker = Speaker(config)
    actions, panoramas, route_mask, tokens = tiny_routes(torch.Generator().manual_seed(6))
    optimizer = torch.optim.Adam(speaker.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = speaker.loss(actions, panoramas, route_mask, tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    speaker.eval()
    generated = speaker.generate(actions, panoramas, route_mask, max_length=20)
    # every route's instruction is said again, and decoding stops once all have said EOS
    assert generated.shape == tokens.shape
    assert torch.equal(generated, tokens)


def test_speaker_generate_pads_after_eos():
    torch.manual_seed(1)
    config = SpeakerConfig(vocab_size=SPEAKER_VOCAB, feature_size=FEATURES, hidden_size=HIDDEN)
    speaker = Speaker(config).eval()
    # make EOS likely but not certain: its output bias is raised
    with torch.no_grad():
        speaker.projection.bias[EOS] = 1.5
    actions, panoramas, route_mask, _ = tiny_routes(torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(0)
    many = 16
    out = speaker.generate(
        actions.repeat(many, 1, 1),
        panoramas.repeat(many, 1, 1, 1),
        route_mask.repeat(many, 1),
        max_length=30,
        sample=True,
        generator=generator,
    )  # [16 B, <= 30]
    assert out.shape[1] <= 30
    assert not (out == config.bos_idx).any()
    ended = 0
    for row in out.tolist():
        if EOS in row:
            ended += 1
            first = row.index(EOS)
            assert all(word == PAD for word in row[first + 1 :])
            assert PAD not in row[:first]
        else:
            assert len(row) == 30 and PAD not in row
    assert ended > 0
    if ended == out.shape[0]:  # everyone said EOS: decoding stopped at the last EOS
        assert max(row.index(EOS) for row in out.tolist()) == out.shape[1] - 1


@pytest.mark.parametrize("sample", [False, True])
def test_speaker_generate_is_deterministic_given_the_generator(sample):
    torch.manual_seed(2)
    config = SpeakerConfig(vocab_size=SPEAKER_VOCAB, feature_size=FEATURES, hidden_size=HIDDEN)
    speaker = Speaker(config).eval()
    actions, panoramas, route_mask, _ = tiny_routes(torch.Generator().manual_seed(8))
    runs = [
        speaker.generate(
            actions,
            panoramas,
            route_mask,
            max_length=10,
            sample=sample,
            generator=torch.Generator().manual_seed(3),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert np.all(runs[0].numpy() < SPEAKER_VOCAB)
