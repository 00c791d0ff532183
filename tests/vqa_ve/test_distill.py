"""CLIP-TD's core: adaptive token selection, per-instance weights, the distillation term,
the student-attention tap and the teacher's text / grid helpers (tiny tensors, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from envs.tokenizer import PAD_ID
from vln_agent.encoders import create_encoder
from vqa_ve.datasets import QAExample
from vqa_ve.distill import (
    DistillConfig,
    DistillProjection,
    StudentTap,
    TextEmbeddingCache,
    attention_scores,
    candidate_texts,
    clip_relevance_scores,
    confidence_in_target,
    distillation_loss,
    embed_texts,
    instance_text,
    instance_weights,
    project_grid,
    resample_grid,
    select_tokens,
    student_confidence,
    teacher_target,
    top_candidate_is_right,
    zero_shot_probabilities,
)
from vqa_ve.models import QABatch, QAFusionModel, QAModelConfig

BATCH, LENGTH, REGIONS, CHANNELS, VOCAB, WIDTH, EMBED = 3, 5, 6, 8, 20, 16, 12


# ------------------------------------------------------------------ selection
def test_selection_keeps_exactly_the_top_scored_tokens() -> None:
    scores = torch.tensor([[0.1, 3.0, -1.0, 2.5, 0.0, 2.9]])  # ranks: 1, 5, 3, 0, ...
    valid = torch.ones_like(scores, dtype=torch.bool)
    for k_tokens in range(1, 7):
        # mass reached exactly by the top k: keep those k and nothing else
        probs = torch.softmax(scores, -1)[0].sort(descending=True).values
        mass = float(probs[:k_tokens].sum()) - 1e-6
        mask = select_tokens(scores, valid, mass=mass)
        expected = scores[0].argsort(descending=True)[:k_tokens]
        assert set(mask[0].nonzero()[:, 0].tolist()) == set(expected.tolist())


def test_k_adapts_to_the_score_distribution() -> None:
    peaked = torch.tensor([[10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    flat = torch.tensor([[0.1, 0.0, 0.05, 0.0, 0.1, 0.0, 0.05, 0.0]])
    valid = torch.ones(2, 8, dtype=torch.bool)
    mask = select_tokens(torch.cat([peaked, flat]), valid, mass=0.5)
    assert mask[0].sum() == 1 and mask[0, 0]
    assert mask[1].sum() == 4  # half of a near-uniform distribution
    everything = select_tokens(torch.cat([peaked, flat]), valid, mass=1.0)
    assert everything.all()


def test_padding_is_never_selected_and_min_tokens_holds() -> None:
    scores = torch.tensor([[0.0, 9.0, 8.0, 7.0], [5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    valid = torch.tensor([[True, False, False, True], [True, True, True, True], [False] * 4])
    mask = select_tokens(scores, valid, mass=1.0)
    assert not (mask & ~valid).any()
    assert mask[0].tolist() == [True, False, False, True]
    assert not mask[2].any()  # no valid token: nothing selected
    floor = select_tokens(scores, valid, mass=0.01, min_tokens=3)
    assert floor[1].sum() == 3 and floor[1, 0]
    assert floor[0].sum() == 2  # min_tokens capped by the valid tokens


def test_clip_relevance_ranks_cells_by_cosine_to_the_text() -> None:
    text = torch.tensor([[1.0, 0.0, 0.0]])
    cells = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.1, 0.0], [1.0, 1.0, 0.0]]])
    scores = clip_relevance_scores(cells, text, logit_scale=100.0)  # [1, 3]
    assert scores[0].argsort(descending=True).tolist() == [1, 2, 0]
    assert scores[0, 0].abs() < 1e-5 and scores.max() <= 100.0 + 1e-4


def test_attention_scores_give_back_the_attention_renormalised() -> None:
    attention = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    valid = torch.tensor([[False, True, True, True]])
    mask = select_tokens(attention_scores(attention), valid, mass=0.6)
    # renormalised over the valid tokens: 0.6, 0.3, 0.1 -> the first valid one holds 0.6
    assert mask.tolist() == [[False, True, False, False]]


# ------------------------------------------------------------------ weighting
def test_zero_shot_confidence_and_whether_the_teacher_is_right() -> None:
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # shared [K, E]
    probs = zero_shot_probabilities(image, candidates, logit_scale=10.0)  # [2, 3]
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    labels = torch.tensor([0, 0])
    assert top_candidate_is_right(probs, labels).tolist() == [True, False]
    confidence = confidence_in_target(probs, labels)
    assert confidence[0] > 0.5 > confidence[1]
    soft = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.6, 0.0]])  # VQA soft scores
    assert top_candidate_is_right(probs, soft).tolist() == [False, True]
    assert torch.allclose(
        confidence_in_target(probs, soft), torch.stack([probs[0, 2], probs[1, 1]])
    )
    per_instance = torch.stack([candidates[:2], candidates[1:]])  # [2, 2, E]
    mask = torch.tensor([[True, True], [True, False]])
    masked = zero_shot_probabilities(image, per_instance, 10.0, mask)
    assert masked[1].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "weighting", ["constant", "teacher-confidence", "teacher-confidence-x-student-uncertainty"]
)
def test_weights_are_monotone_in_teacher_confidence(weighting: str) -> None:
    confidence = torch.linspace(0.0, 1.0, 11)
    student = torch.full_like(confidence, 0.3)
    weights = instance_weights(weighting, confidence, student_right_probability=student)
    assert (weights.diff() >= 0).all()
    if weighting != "constant":
        assert (weights.diff() > 0).all() and weights[0] == 0.0
    else:
        assert (weights == 1.0).all()


def test_weights_are_zero_where_the_teacher_is_wrong_if_configured() -> None:
    confidence = torch.tensor([0.9, 0.9, 0.2])
    right = torch.tensor([True, False, True])
    kept = instance_weights("teacher-confidence", confidence, right)
    zeroed = instance_weights("constant", confidence, right, zero_when_teacher_wrong=True)
    assert kept.tolist() == pytest.approx([0.9, 0.9, 0.2])
    assert zeroed.tolist() == [1.0, 0.0, 1.0]
    student = torch.tensor([0.0, 0.5, 1.0])
    both = instance_weights(
        "teacher-confidence-x-student-uncertainty", confidence, right, student, True
    )
    assert both.tolist() == pytest.approx([0.9, 0.0, 0.0])


def test_student_confidence_of_both_head_kinds() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert student_confidence(logits, torch.tensor([0, 1]))[1] == pytest.approx(1 / 3)
    soft = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    vqa = student_confidence(logits, soft)
    assert vqa[0] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item()) and vqa[1] == 0


# ------------------------------------------------------------------ loss
def test_loss_is_zero_when_projected_student_equals_teacher_and_has_gradient() -> None:
    torch.manual_seed(0)
    projection = DistillProjection(WIDTH, EMBED)
    tokens = torch.randn(BATCH, REGIONS, WIDTH, requires_grad=True)  # [B, R, d]
    projected = projection(tokens)  # [B, R, E]
    selected = torch.rand(BATCH, REGIONS) > 0.3
    weights = torch.tensor([1.0, 0.5, 0.0])
    for distance in ("cosine", "l2"):
        same = distillation_loss(projected, projected.detach(), selected, weights, None, distance)
        assert same["distill_loss"].abs() < 1e-6
    teacher = torch.randn(BATCH, REGIONS, EMBED)
    parts = distillation_loss(projected, teacher, selected, weights)
    assert set(parts) == {"distill_loss", "distill_weight", "selected_fraction"}
    assert parts["distill_weight"] == pytest.approx(0.5)
    assert parts["selected_fraction"] == pytest.approx(selected.float().mean().item())
    parts["distill_loss"].backward()
    assert (
        projection.linear.weight.grad is not None and projection.linear.weight.grad.abs().sum() > 0
    )
    assert tokens.grad is not None
    assert tokens.grad[0].abs().sum() > 0 and tokens.grad[2].abs().sum() == 0  # weight 0


def test_loss_is_the_weighted_mean_over_selected_tokens() -> None:
    student = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    selected = torch.tensor([[True, True], [True, False]])
    parts = distillation_loss(student, teacher, selected, torch.tensor([1.0, 0.5]))
    # instance 0: mean(0, 1) = 0.5; instance 1: 1 (only its first token) x 0.5
    assert parts["distill_loss"].item() == pytest.approx((0.5 + 0.5) / 2)


def test_naive_uses_every_valid_token_with_constant_weight() -> None:
    valid = torch.tensor([[True, True, False], [True, True, True]])
    config = DistillConfig(distill_mode="naive", teacher="t.pt", teacher_features=("t.h5",))
    assert config.enabled and not DistillConfig().enabled
    selected = select_tokens(torch.randn(2, 3), valid, mass=1.0)  # naive: all the mass
    weights = instance_weights("constant", torch.tensor([0.1, 0.9]))
    assert torch.equal(selected, valid) and weights.tolist() == [1.0, 1.0]
    parts = distillation_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), selected, weights, valid)
    assert parts["selected_fraction"] == 1.0 and parts["distill_weight"] == 1.0


def test_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="token_scorer"):
        DistillConfig(token_scorer="random")
    with pytest.raises(ValueError, match="selection_mass"):
        DistillConfig(selection_mass=0.0)
    with pytest.raises(ValueError, match="teacher_features"):
        DistillConfig(distill_mode="clip-td", teacher="t.pt")
    assert dataclasses.fields(DistillConfig)[0].metadata["flags"] == ("--distill",)


# ------------------------------------------------------------------ student tap
def tiny_fusion_model(task: str = "snli-ve", dropout: float = 0.0) -> QAFusionModel:
    torch.manual_seed(0)
    config = QAModelConfig(
        task=task,
        vocab_size=VOCAB,
        feature_dim=CHANNELS,
        num_regions=REGIONS,
        hidden_size=WIDTH,
        num_layers=2,
        num_heads=2,
        dropout=dropout,
    )
    return QAFusionModel(config)


def tiny_batch() -> QABatch:
    ids = torch.randint(4, VOCAB, (BATCH, LENGTH))
    ids[:, 0] = 3  # <BOS>
    ids[1, 3:] = PAD_ID  # a shorter text
    return QABatch(
        ids, torch.zeros_like(ids), torch.randn(BATCH, REGIONS, CHANNELS), torch.tensor([0, 1, 2])
    )


@pytest.mark.parametrize("training", [False, True])
def test_student_attention_rows_sum_to_one_and_outputs_are_unchanged(training: bool) -> None:
    model = tiny_fusion_model(dropout=0.1)
    model.train(training)
    batch = tiny_batch()
    torch.manual_seed(1)
    plain = model(batch)
    torch.manual_seed(1)
    with StudentTap(model) as tap:
        tapped = model(batch)
    attention = tap.pooled_attention()  # [B, L+R]
    assert torch.equal(plain, tapped)
    assert attention.shape == (BATCH, LENGTH + REGIONS)
    assert torch.allclose(attention.sum(-1), torch.ones(BATCH), atol=1e-5)
    assert (attention[1, 3:LENGTH] == 0).all()  # padded words get no attention
    assert tap.image_tokens("encoder-output").shape == (BATCH, REGIONS, WIDTH)
    assert tap.image_tokens("image-projection").shape == (BATCH, REGIONS, WIDTH)
    assert model.training == training and model.encoder.layers[-1].self_attn.training == training
    torch.manual_seed(1)
    assert torch.equal(model(batch), plain)  # the hooks are gone after the block


def test_distillation_gradient_reaches_the_student_through_the_tap() -> None:
    model = tiny_fusion_model().train()
    projection = DistillProjection(WIDTH, EMBED)
    with StudentTap(model) as tap:
        parts, _ = model.losses(tiny_batch())
    projected = projection(tap.image_tokens())  # [B, R, E]
    image_attention = tap.pooled_attention()[:, -REGIONS:]  # [B, R]
    selected = select_tokens(attention_scores(image_attention), torch.ones(BATCH, REGIONS) > 0)
    loss = distillation_loss(projected, torch.randn(BATCH, REGIONS, EMBED), selected, torch.ones(3))
    (parts["task_loss"] + loss["distill_loss"]).backward()
    assert model.encoder.layers[0].linear1.weight.grad.abs().sum() > 0
    assert model.image_projection[1].weight.grad.abs().sum() > 0
    assert 0 < loss["selected_fraction"] <= 1


# ------------------------------------------------------------------ teacher
def test_teacher_text_embeddings_are_normalised_and_cached() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("clipvil-tiny")
    texts = ["a red chair", "a blue sofa", "a red chair"]
    embeddings = embed_texts(encoder, texts, batch_size=2)  # [3, E]
    assert embeddings.shape == (3, encoder.embed_dim)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(embeddings[0], embeddings[2], atol=1e-5)
    cache = TextEmbeddingCache(encoder)
    assert torch.allclose(cache(texts), embeddings, atol=1e-5) and len(cache) == 2
    assert embed_texts(encoder, []).shape == (0, encoder.embed_dim)
    # stored grid cells projected here = the encoder's own projected grid
    images = torch.randn(2, 3, *encoder.image_size)
    stored = encoder.encode_image_grid(images).flatten(1, 2)  # [2, h*w, C]
    joint = encoder.encode_image_grid(images, project=True).flatten(1, 2)  # [2, h*w, E]
    assert torch.allclose(project_grid(encoder, stored), joint, atol=1e-5)


def test_resample_grid_and_texts_of_each_task() -> None:
    cells = torch.arange(8.0).reshape(1, 4, 2)  # a 2x2 grid of 2 channels
    assert torch.equal(resample_grid(cells, (2, 2), (2, 2)), cells)
    assert resample_grid(cells, (2, 2), (3, 3)).shape == (1, 9, 2)
    assert torch.equal(resample_grid(cells, (2, 2), (1, 1)), cells.mean(1, keepdim=True))
    rows = resample_grid(cells, (2, 2), (2, 1))  # the mean of each row of the grid
    assert torch.equal(rows, torch.stack([cells[:, :2].mean(1), cells[:, 2:].mean(1)], 1))
    vcr = QAExample("a/q2a", "img", (("why ?", "yes"), ("why ?", "no")), label=1)
    assert instance_text(vcr) == "why ? no"
    assert candidate_texts("vcr", vcr) == ["why ? yes", "why ? no"]
    snli = QAExample("p", "img", (("a dog runs", ""),), label=0)
    assert instance_text(snli) == "a dog runs"
    assert candidate_texts("snli-ve", snli) == ["a photo where a dog runs", "a photo"]
    assert teacher_target("snli-ve", torch.tensor([0, 1, 2])).tolist() == [0, 1, 1]
    assert teacher_target("vcr", torch.tensor([3])).tolist() == [3]
