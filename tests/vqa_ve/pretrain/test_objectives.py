"""The pretraining objectives' masks and pairs: masked positions only, BERT's 80/10/10,
balanced matching labels, reproducible from the generator."""

from __future__ import annotations

import pytest
import torch

from envs.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from vqa_ve.pretrain.objectives import (
    IGNORE_INDEX,
    MASK_ID,
    MATCHED,
    MISMATCHED,
    mask_words,
    mismatch_pairs,
)

VOCAB = 50


def captions(rows: int, length: int, seed: int = 0) -> torch.Tensor:
    """``<BOS> words <EOS> <PAD>...`` rows of random lengths, with some <UNK>."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.full((rows, length), PAD_ID, dtype=torch.long)
    for row in range(rows):
        words = int(torch.randint(1, length - 1, (1,), generator=generator))
        tokens[row, 0] = BOS_ID
        tokens[row, 1 : 1 + words] = torch.randint(
            MASK_ID + 1, VOCAB, (words,), generator=generator
        )
        tokens[row, 1 + words] = EOS_ID
    tokens[0, 1] = UNK_ID
    return tokens


def test_labels_only_at_chosen_words_and_inputs_kept_elsewhere():
    tokens = captions(64, 12)
    inputs, labels = mask_words(tokens, 0.15, torch.Generator().manual_seed(1), VOCAB)
    chosen = labels != IGNORE_INDEX
    assert chosen.any()
    assert (labels[chosen] == tokens[chosen]).all()  # the original word is the target
    assert (tokens[chosen] > MASK_ID).all()  # never a special token (<PAD> <UNK> <EOS> <BOS>)
    assert (inputs[~chosen] == tokens[~chosen]).all()  # nothing else changes
    specials = (tokens == PAD_ID) | (tokens == BOS_ID) | (tokens == EOS_ID) | (tokens == UNK_ID)
    assert not chosen[specials].any()
    assert chosen.any(dim=1).all()  # every caption has at least one word to predict


def test_share_and_bert_split_of_the_chosen_words():
    words = 14
    tokens = torch.randint(MASK_ID + 1, VOCAB, (4000, words), generator=torch.Generator())
    inputs, labels = mask_words(tokens, 0.15, torch.Generator().manual_seed(2), VOCAB)
    chosen = labels != IGNORE_INDEX
    # Each word with p = 0.15, plus one forced word where none was chosen: n p + (1 - p)^n.
    expected = (words * 0.15 + 0.85**words) / words
    assert abs(float(chosen.float().mean()) - expected) < 0.005
    masked = float((inputs[chosen] == MASK_ID).float().mean())
    kept = float((inputs[chosen] == tokens[chosen]).float().mean())
    assert abs(masked - 0.8) < 0.02
    assert abs(kept - (0.1 + 0.1 / (VOCAB - MASK_ID - 1))) < 0.02  # unchanged, or drawn itself
    replaced = inputs[chosen & (inputs != MASK_ID)]
    assert (replaced > MASK_ID).all() and (replaced < VOCAB).all()  # random words are words


def test_the_same_generator_state_gives_the_same_masks():
    tokens = captions(8, 10)
    first = mask_words(tokens, 0.3, torch.Generator().manual_seed(5), VOCAB)
    second = mask_words(tokens, 0.3, torch.Generator().manual_seed(5), VOCAB)
    other = mask_words(tokens, 0.3, torch.Generator().manual_seed(6), VOCAB)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[1], other[1])


def test_bad_mask_settings_are_refused():
    with pytest.raises(ValueError, match="probability"):
        mask_words(captions(2, 6), 0.0, torch.Generator(), VOCAB)
    with pytest.raises(ValueError, match="<MASK>"):
        mask_words(captions(2, 6), 0.15, torch.Generator(), MASK_ID + 1)


POOL = [(f"image{i % 5}", f"caption {i}") for i in range(20)]


@pytest.mark.parametrize("size", [1, 2, 7, 16])
def test_mismatched_pairs_are_exactly_half_and_show_other_images(size):
    images = [f"image{i % 5}" for i in range(size)]
    replacements, labels = mismatch_pairs(images, POOL, 0.5, torch.Generator().manual_seed(3))
    assert int((labels == MISMATCHED).sum()) == size // 2
    assert int((labels == MATCHED).sum()) == size - size // 2
    for image, index, label in zip(images, replacements, labels.tolist(), strict=True):
        assert (index is None) == (label == MATCHED)
        if index is not None:
            assert POOL[index][0] != image


def test_no_mismatch_keeps_every_pair_and_one_image_cannot_mismatch():
    replacements, labels = mismatch_pairs(["image0"] * 4, POOL, 0.0, torch.Generator())
    assert replacements == [None] * 4 and (labels == MATCHED).all()
    with pytest.raises(ValueError, match="two images"):
        mismatch_pairs(["a", "a"], [("a", "x"), ("a", "y")], 0.5, torch.Generator())
    with pytest.raises(ValueError, match="mismatch"):
        mismatch_pairs(["a"], POOL, 1.0, torch.Generator())
