"""COCO-style captions of the QA images, in MS-COCO's ``captions_{subtype}.json`` format.

Each VQA image gets :data:`CAPTIONS_PER_IMAGE` captions (as COCO's images have about
five) from :func:`envs.synthetic.language.captions_for_view`, drawn from their own stream
(:data:`CAPTION_STREAM`), so that writing them changes no other QA file. ``file_name`` is
the VQA image's name, so the captions' image keys (file stems) are the VQA feature keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.synthetic.language import captions_for_view
from envs.synthetic.qa.views import QAView

#: Captions per image (MS-COCO's images have five, a few have six or seven).
CAPTIONS_PER_IMAGE = 5
#: Third entry of the caption seeds ``[seed, QA_STREAM, CAPTION_STREAM, split, house]``:
#: apart from the split indices and the records stream the other QA draws use.
CAPTION_STREAM = 0xC0C0
#: Caption id = image id * stride + its rank: unique across the files of a world (image
#: ids are), like COCO's caption ids.
CAPTION_ID_STRIDE = 10
#: The single license every image is listed under.
LICENSE_ID = 1


def view_captions(
    scene: dict, views: Sequence[QAView], rng: np.random.Generator
) -> list[list[str]]:
    """:data:`CAPTIONS_PER_IMAGE` captions of each of ``views`` (all in ``scene``)."""
    return [
        captions_for_view(scene, view.viewpoint, view.view_index, rng, CAPTIONS_PER_IMAGE)
        for view in views
    ]


def records(
    images: Sequence[tuple[int, str]],
    captions: Sequence[Sequence[str]],
    width: int,
    height: int,
) -> dict:
    """The captions file of a split: ``images`` are ``(image_id, file_name)`` pairs and
    ``captions`` the texts of each, in the same order."""
    return {
        "info": {"description": "clipvil synthetic world (envs.synthetic.qa)", "version": "1.0"},
        "licenses": [{"id": LICENSE_ID, "name": "generated", "url": ""}],
        "images": [
            {
                "license": LICENSE_ID,
                "file_name": file_name,
                "height": height,
                "width": width,
                "id": image_id,
            }
            for image_id, file_name in images
        ],
        "annotations": [
            {"image_id": image_id, "id": image_id * CAPTION_ID_STRIDE + rank, "caption": text}
            for (image_id, _), texts in zip(images, captions, strict=True)
            for rank, text in enumerate(texts)
        ],
    }
