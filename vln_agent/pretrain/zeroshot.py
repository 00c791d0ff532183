"""Zero-shot classification of held-out views with a CLIP encoder (Radford et al. 2021, sec. 3.1).

Two tasks on the captioned views of a split's houses (val_unseen by default: houses no
pretraining run has seen):

* room type: every captioned view (all three elevations; the accuracy of level views
  alone is reported too), label = the room the view mostly shows, classes = all room
  types of the world, prompt ``"a photo of a {room}"``;
* object category: views with an object covering at least
  :data:`~envs.synthetic.captions.CAPTION_MIN_PIXELS` of the 640 x 480 view whose box is
  centred in the encoder's centre square (about 1 in 10 largest objects lie outside it,
  in the view's side strips the encoder never sees), label = the category of the largest
  such object, classes = all object categories, prompt ``"a photo of a {category}"``.

Each class is named by its first word in :mod:`envs.synthetic.phrasing` (``"staircase"``
for the ``stairs`` type) with the right article. ``ensemble_accuracy`` uses CLIP's prompt
ensembling instead (sec. 3.1.4): a class is the mean normalized embedding of the prompts
of all its synonyms (rooms) or all its synonyms in each of its colours (objects: captions
always name an object's colour). Chance levels: uniform (1 / classes) and majority class.
A supervised checkpoint's linear heads are scored on the same views.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from envs.errors import DataError
from envs.synthetic.phrasing import OBJECT_WORDS, ROOM_WORDS, with_article
from envs.synthetic.vocabulary import COLOUR_NAMES, OBJECTS
from vln_agent.encoders import (
    ENCODER_KIND_KEY,
    CLIPEncoder,
    create_encoder,
    read_checkpoint_metadata,
)
from vln_agent.pretrain.data import (
    DEFAULT_RENDER_WORKERS,
    CaptionedView,
    LabelSpace,
    ViewLabels,
    load_captioned_views,
    load_view_labels,
    render_view_cache,
    split_scans,
)
from vln_agent.pretrain.objectives import LabelHeads, heads_from_checkpoint

#: The prompt of a class name (CLIP's most common template).
PROMPT_TEMPLATE = "a photo of {}"
#: Images embedded at a time.
EVAL_BATCH_SIZE = 128


@dataclass(frozen=True)
class EvalViews:
    """Held-out views with their labels and pixels."""

    split: str
    views: list[CaptionedView]
    labels: list[ViewLabels]
    #: uint8 ``[N, S, S, 3]`` encoder inputs (memory-mapped).
    pixels: np.ndarray
    #: ``[N]`` room class of each view.
    room: np.ndarray
    #: ``[N]`` class of each view's largest object in the encoder's square, -1 when none.
    largest_object: np.ndarray
    #: ``[N]`` bool: a level view.
    level: np.ndarray
    classes: LabelSpace


def load_eval_views(
    data_dir: str | os.PathLike[str],
    split: str,
    size: int,
    cache_dir: str | os.PathLike[str],
    classes: LabelSpace | None = None,
    workers: int = DEFAULT_RENDER_WORKERS,
    progress: bool = True,
) -> EvalViews:
    """The captioned views of ``split``'s houses, labelled and rendered at ``size``."""
    classes = classes or LabelSpace()
    views = load_captioned_views(data_dir, split_scans(data_dir, split))
    labels = load_view_labels(data_dir, views)
    pixels = render_view_cache(data_dir, views, size, cache_dir, workers, progress)
    return EvalViews(
        split=split,
        views=views,
        labels=labels,
        pixels=pixels,
        room=classes.room_index(labels, f"scenes of {split}"),
        largest_object=classes.largest_object_index(labels),
        level=np.array([v.is_level for v in views], dtype=bool),
        classes=classes,
    )


# ---------------------------------------------------------------------------- metrics


def class_prompts(names: Sequence[str], words: dict[str, tuple[str, ...]]) -> list[str]:
    """``"a photo of a kitchen"``, ... for each class (named by its first word)."""
    return [PROMPT_TEMPLATE.format(with_article(words.get(n, (n,))[0])) for n in names]


def room_prompt_sets(names: Sequence[str]) -> list[list[str]]:
    """The ensemble prompts of each room type: one per synonym."""
    return [
        [PROMPT_TEMPLATE.format(with_article(w)) for w in ROOM_WORDS.get(n, (n,))] for n in names
    ]


def object_prompt_sets(names: Sequence[str]) -> list[list[str]]:
    """The ensemble prompts of each object category: every synonym in every colour it has."""
    sets = []
    for name in names:
        kind = OBJECTS.get(name)
        colours = (kind.colours if kind is not None else ()) or COLOUR_NAMES
        words = OBJECT_WORDS.get(name, (name,))
        sets.append(
            [PROMPT_TEMPLATE.format(with_article(f"{c} {w}")) for w in words for c in colours]
        )
    return sets


def zero_shot_logits(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``[N, C]`` of ``[N, E]`` image and ``[C, E]`` class embeddings."""
    image = torch.nn.functional.normalize(image.float(), dim=-1)
    text = torch.nn.functional.normalize(text.float(), dim=-1)
    return image @ text.T


def accuracy(logits: torch.Tensor | np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of ``[N, C]`` scores over the rows whose label is >= 0 (NaN if none)."""
    labels = np.asarray(labels)
    keep = labels >= 0
    if not keep.any():
        return float("nan")
    predicted = np.asarray(torch.as_tensor(logits).argmax(dim=1))
    return float((predicted[keep] == labels[keep]).mean())


def chance_levels(labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Uniform guessing (1 / classes) and always answering the most frequent label."""
    labels = np.asarray(labels)
    labels = labels[labels >= 0]
    majority = (
        float(np.bincount(labels, minlength=num_classes).max() / len(labels))
        if len(labels)
        else float("nan")
    )
    return {"chance_uniform": 1.0 / num_classes, "chance_majority": majority}


def any_visible_accuracy(scores: torch.Tensor, data: EvalViews) -> float:
    """How often the top object class is one of the view's visible objects (any size above
    the threshold, not only the largest), over the views the object task scores."""
    names = data.classes.object_categories
    predicted = np.asarray(torch.as_tensor(scores).argmax(dim=1))
    hits = [
        names[p] in labels.objects
        for p, label, labels in zip(predicted, data.largest_object, data.labels, strict=True)
        if label >= 0
    ]
    return float(np.mean(hits)) if hits else float("nan")


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def embed_pixels(
    encoder: CLIPEncoder, pixels: np.ndarray, batch_size: int = EVAL_BATCH_SIZE
) -> torch.Tensor:
    """uint8 ``[N, S, S, 3]`` -> ``[N, E]`` pooled image embeddings (eval mode, CPU)."""
    chunks = [
        encoder.embed_images(encoder.pixels_to_input(np.array(pixels[i : i + batch_size])))
        for i in range(0, len(pixels), batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, encoder.embed_dim)


@torch.no_grad()
def embed_prompts(encoder: CLIPEncoder, prompts: list[str]) -> torch.Tensor:
    """``[C, E]`` text embeddings of the prompts."""
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder.encode_text(encoder.tokenize(prompts)).cpu()
    finally:
        encoder.train(was_training)


@torch.no_grad()
def embed_prompt_sets(encoder: CLIPEncoder, prompt_sets: list[list[str]]) -> torch.Tensor:
    """``[C, E]``: per class, the mean of its prompts' normalized embeddings."""
    flat = [prompt for prompts in prompt_sets for prompt in prompts]
    text = torch.nn.functional.normalize(embed_prompts(encoder, flat), dim=-1)  # [P, E]
    sizes = [len(prompts) for prompts in prompt_sets]
    return torch.stack([chunk.mean(dim=0) for chunk in text.split(sizes)])  # [C, E]


def _task(scores: torch.Tensor, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    valid = labels >= 0
    return {
        "accuracy": accuracy(scores, labels),
        "views": int(valid.sum()),
        **chance_levels(labels, num_classes),
    }


def evaluate_views(
    encoder: CLIPEncoder,
    data: EvalViews,
    heads: LabelHeads | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
) -> dict[str, Any]:
    """Zero-shot room and object accuracy on ``data`` (and the heads', when given)."""
    classes = data.classes
    image = embed_pixels(encoder, data.pixels, batch_size)  # [N, E]
    rooms = zero_shot_logits(
        image, embed_prompts(encoder, class_prompts(classes.room_types, ROOM_WORDS))
    )
    objects = zero_shot_logits(
        image, embed_prompts(encoder, class_prompts(classes.object_categories, OBJECT_WORDS))
    )
    room_ensemble = zero_shot_logits(
        image, embed_prompt_sets(encoder, room_prompt_sets(classes.room_types))
    )
    object_ensemble = zero_shot_logits(
        image, embed_prompt_sets(encoder, object_prompt_sets(classes.object_categories))
    )
    level_rooms = np.where(data.level, data.room, -1)
    results: dict[str, Any] = {
        "split": data.split,
        "views": len(data.views),
        "room": {
            **_task(rooms, data.room, len(classes.room_types)),
            "level_accuracy": accuracy(rooms, level_rooms),
            "level_views": int(data.level.sum()),
            "ensemble_accuracy": accuracy(room_ensemble, data.room),
            "classes": len(classes.room_types),
        },
        "object": {
            **_task(objects, data.largest_object, len(classes.object_categories)),
            "any_visible_accuracy": any_visible_accuracy(objects, data),
            "ensemble_accuracy": accuracy(object_ensemble, data.largest_object),
            "classes": len(classes.object_categories),
        },
    }
    if heads is not None:
        with torch.no_grad():
            room_logits, object_logits = heads(image)  # [N, R], [N, C]
        results["linear_heads"] = {
            "room_accuracy": accuracy(room_logits, data.room),
            "room_level_accuracy": accuracy(room_logits, level_rooms),
            "object_accuracy": accuracy(object_logits, data.largest_object),
        }
    return results


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Human-readable lines of :func:`evaluate_views`'s results."""
    room, obj = results["room"], results["object"]
    lines = [
        f"zero-shot on {results['split']} ({results['views']} views)",
        f"  room type: {room['accuracy']:.3f} on {room['views']} views "
        f"(level views {room['level_accuracy']:.3f} on {room['level_views']}, "
        f"prompt ensemble {room['ensemble_accuracy']:.3f}); "
        f"chance {room['chance_uniform']:.3f} uniform / {room['chance_majority']:.3f} majority "
        f"({room['classes']} classes)",
        f"  object category: {obj['accuracy']:.3f} on {obj['views']} views "
        f"(any visible object {obj['any_visible_accuracy']:.3f}, "
        f"prompt ensemble {obj['ensemble_accuracy']:.3f}); "
        f"chance {obj['chance_uniform']:.3f} uniform / {obj['chance_majority']:.3f} majority "
        f"({obj['classes']} classes)",
    ]
    heads = results.get("linear_heads")
    if heads is not None:
        lines.append(
            f"  linear heads: room {heads['room_accuracy']:.3f} "
            f"(level {heads['room_level_accuracy']:.3f}), object {heads['object_accuracy']:.3f}"
        )
    return lines


def evaluate_checkpoint(
    data_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    model: str,
    split: str,
    cache_dir: str | os.PathLike[str],
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_views` of the encoder in ``checkpoint`` (its heads too, if it has any)."""
    encoder = create_encoder(model, pretrained=checkpoint)
    metadata = read_checkpoint_metadata(checkpoint) or {}
    heads = None
    if metadata.get("heads") is not None:
        try:
            found = heads_from_checkpoint(metadata)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise DataError(checkpoint, f"malformed linear heads ({type(err).__name__})") from None
        heads, classes = found if found is not None else (None, LabelSpace())
    else:
        classes = LabelSpace()
    height, width = encoder.image_size
    if height != width:
        raise DataError(
            checkpoint, f"zero-shot evaluation needs square inputs, not {height}x{width}"
        )
    data = load_eval_views(data_dir, split, height, cache_dir, classes, progress=progress)
    results = evaluate_views(encoder, data, heads)
    return {
        "checkpoint": str(checkpoint),
        "model": model,
        ENCODER_KIND_KEY: metadata.get(ENCODER_KIND_KEY),
        "step": metadata.get("step"),
        **results,
    }
