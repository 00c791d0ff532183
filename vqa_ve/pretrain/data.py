"""Pretraining batches: captions with their images, masked and mismatched.

A training example is one caption of a COCO-style file (:mod:`vqa_ve.data.captions`; an
image with five captions gives five examples, as LXMERT samples them). A batch draws the
image-text matching pairs (:func:`~vqa_ve.pretrain.objectives.mismatch_pairs`), encodes
each caption as ``<BOS> caption <EOS>`` with the word tokenizer, masks its words
(:func:`~vqa_ve.pretrain.objectives.mask_words`; labels kept on matched pairs only) and
stacks the image tokens of each pair's image (stored features, or pixels for a model that
encodes them itself).

The pretraining vocabulary is ``<PAD> <UNK> <EOS> <BOS> <MASK>`` then the words of the
training captions (and the QA stage's questions), most frequent first
(:func:`pretraining_tokenizer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from envs.tokenizer import PAD_ID, SPECIAL_TOKENS, Tokenizer
from vln_agent.extract_images import ImageFeatures
from vqa_ve.data.captions import Caption
from vqa_ve.datasets import FeatureFiles, encode_pair, image_shape
from vqa_ve.pretrain.model import CaptionBatch
from vqa_ve.pretrain.objectives import IGNORE_INDEX, MASK_TOKEN, MATCHED, mask_words, mismatch_pairs


def pretraining_tokenizer(texts: Iterable[str], min_count: int = 1) -> Tokenizer:
    """The special tokens, ``<MASK>``, then the words :meth:`Tokenizer.from_texts` keeps
    (seen at least ``min_count`` times; most frequent first, ties alphabetical)."""
    words = Tokenizer.from_texts(texts, min_count).vocab[len(SPECIAL_TOKENS) :]
    return Tokenizer([*SPECIAL_TOKENS, MASK_TOKEN, *words])


def caption_pool(captions: Sequence[Caption]) -> list[tuple[str, str]]:
    """``(image_id, text)`` of every caption: what mismatched pairs draw from (built once
    per split, not per batch)."""
    return [(caption.image_id, caption.text) for caption in captions]


def collate_captions(
    captions: Sequence[Caption],
    pool: Sequence[tuple[str, str]],
    tokenizer: Tokenizer,
    features: ImageFeatures | FeatureFiles,
    max_length: int,
    mask_probability: float,
    mismatch: float,
    generator: torch.Generator,
) -> CaptionBatch:
    """A :class:`CaptionBatch` of ``captions`` (their images); mismatched pairs take a
    caption of ``pool`` (:func:`caption_pool` of the split) showing another image."""
    image_ids = [caption.image_id for caption in captions]
    replacements, itm_labels = mismatch_pairs(image_ids, pool, mismatch, generator)
    texts = [
        caption.text if index is None else pool[index][1]
        for caption, index in zip(captions, replacements, strict=True)
    ]
    encoded = [encode_pair(tokenizer, text, "", max_length)[0] for text in texts]
    length = max(len(ids) for ids in encoded)
    ids = np.full((len(texts), length), PAD_ID, dtype=np.int64)  # [B, L]
    for row, words in enumerate(encoded):
        ids[row, : len(words)] = words
    tokens, mlm_labels = mask_words(
        torch.from_numpy(ids), mask_probability, generator, len(tokenizer)
    )  # [B, L], [B, L]
    mlm_labels[itm_labels != MATCHED] = IGNORE_INDEX  # a mismatched caption teaches no words
    cells, channels = image_shape(features)
    image = np.stack([features[i].reshape(cells, channels) for i in image_ids])  # [B, R, F]
    segments = torch.zeros_like(tokens)  # [B, L]: one text segment
    return CaptionBatch(tokens, segments, torch.from_numpy(image), mlm_labels, itm_labels)
