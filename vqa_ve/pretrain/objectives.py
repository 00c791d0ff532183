"""The pretraining objectives' inputs and labels: masked words and mismatched pairs.

- **Masked language modelling** (BERT's recipe, as LXMERT and CLIP-ViL pretrain): each word
  of a caption is chosen with probability ``probability`` (15 %); a chosen word becomes
  ``<MASK>`` 80 % of the time, a random word 10 % and stays itself 10 %, and the model
  predicts the original word at the chosen positions only. Labels are
  :data:`IGNORE_INDEX` everywhere else (``<PAD>``, ``<BOS>``, ``<EOS>``, ``<UNK>`` are never
  chosen). A caption with no chosen word gets one (short captions would otherwise often
  carry no signal). Only matched pairs are scored (LXMERT: the words of a mismatched
  caption say nothing about the image).
- **Image-text matching**: exactly ``floor(B * mismatch)`` pairs of a batch get a caption of
  another image (drawn from the whole training set), label 0; the rest keep their own,
  label 1. With ``mismatch = 0.5`` the labels are balanced in every batch.

Every draw comes from a ``torch.Generator`` the caller owns (saved with the run, so a
resumed run draws the same masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from envs.tokenizer import SPECIAL_TOKENS

#: The mask word: the first entry after the special tokens of a pretraining vocabulary.
MASK_TOKEN = "<MASK>"
MASK_ID = len(SPECIAL_TOKENS)
#: Labels ignored by the MLM loss (``torch.nn.functional.cross_entropy``'s default).
IGNORE_INDEX = -100
#: BERT's split of the chosen words: replaced by <MASK>, by a random word, left unchanged.
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1
#: Image-text matching labels.
MISMATCHED, MATCHED = 0, 1
#: Draws of a mismatched caption before giving up (all of them showing the pair's image
#: means the pool holds one image).
MAX_DRAWS = 1000


def mask_words(
    tokens: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    vocab_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked inputs and MLM labels ``[B, L]`` of word ids ``tokens`` ``[B, L]``.

    Words are the ids above :data:`MASK_ID`; random replacements are drawn among them.
    """
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"mask probability {probability} must be in (0, 1]")
    if vocab_size <= MASK_ID + 1:
        raise ValueError("a pretraining vocabulary needs <MASK> and at least one word")
    words = tokens > MASK_ID  # [B, L]: maskable positions
    draws = torch.rand(tokens.shape, generator=generator)  # [B, L]
    chosen = words & (draws < probability)  # [B, L]
    # A caption with words but none chosen gets its word of the lowest draw.
    empty = words.any(dim=1) & ~chosen.any(dim=1)  # [B]
    if empty.any():
        scores = draws.masked_fill(~words, 2.0)  # [B, L]: non-words never win
        first = scores.argmin(dim=1)  # [B]
        chosen[empty, first[empty]] = True
    labels = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE_INDEX))  # [B, L]
    kind = torch.rand(tokens.shape, generator=generator)  # [B, L]
    random_words = torch.randint(MASK_ID + 1, vocab_size, tokens.shape, generator=generator)
    inputs = tokens.clone()  # [B, L]
    to_mask = chosen & (kind < MASK_SHARE)
    to_random = chosen & (kind >= MASK_SHARE) & (kind < MASK_SHARE + RANDOM_SHARE)
    inputs[to_mask] = MASK_ID
    inputs[to_random] = random_words[to_random]
    return inputs, labels


def mismatch_pairs(
    image_ids: Sequence[str],
    candidates: Sequence[tuple[str, str]],
    mismatch: float,
    generator: torch.Generator,
) -> tuple[list[int | None], torch.Tensor]:
    """Which pairs of a batch of ``image_ids`` get another image's caption.

    ``candidates`` are ``(image_id, caption)`` of the training set. Returns, per pair, the
    index of the replacing candidate (None: the pair keeps its caption) and the ITM labels
    ``[B]`` (:data:`MATCHED` / :data:`MISMATCHED`); exactly ``floor(B * mismatch)`` pairs
    are mismatched, each with a caption of an image other than its own.
    """
    if not 0.0 <= mismatch < 1.0:
        raise ValueError(f"mismatch share {mismatch} must be in [0, 1)")
    size = len(image_ids)
    count = int(size * mismatch)
    labels = torch.full((size,), MATCHED, dtype=torch.long)  # [B]
    replacements: list[int | None] = [None] * size
    if count == 0:
        return replacements, labels
    picked = torch.randperm(size, generator=generator)[:count].tolist()
    for position in picked:
        for _ in range(MAX_DRAWS):
            index = int(torch.randint(len(candidates), (1,), generator=generator))
            if candidates[index][0] != image_ids[position]:
                break
        else:
            raise ValueError("image-text matching needs captions of at least two images")
        replacements[position] = index
        labels[position] = MISMATCHED
    return replacements, labels
