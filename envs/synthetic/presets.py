"""Sizes of the synthetic world: how many houses, paths, captions, and how big the images.

A preset is a plain dataclass; :data:`PRESETS` holds the named ones that ``clipvil world
--preset`` offers. ``tiny`` is for tests (builds in seconds), ``small`` is the default for
the demo and the shipped checkpoints, ``medium`` is a larger world for longer runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from envs.errors import DataError


@dataclass(frozen=True)
class WorldPreset:
    """How large a synthetic world is."""

    #: Name of the preset (recorded in the manifest).
    name: str
    #: Houses whose paths form the train and val_seen splits.
    train_houses: int
    #: Houses of the val_unseen split (disjoint from every other split's houses).
    val_unseen_houses: int
    #: Houses of the test split (disjoint from every other split's houses).
    test_houses: int
    #: Fewest and most rooms per house, hallway included.
    rooms: tuple[int, int] = (5, 8)
    #: R2R paths per train house, val_unseen house and test house.
    paths_per_house: int = 20
    #: Extra paths per train house that form val_seen (disjoint from the train paths).
    val_seen_paths_per_house: int = 4
    #: Instructions per path (R2R has 3).
    instructions_per_path: int = 3
    #: Side in pixels of each of the six skybox faces (Matterport's are 1024 or 2048).
    face_size: int = 256
    #: Views per viewpoint that get an image-caption record in ``captions.json``.
    captions_per_viewpoint: int = 6
    #: Captions (phrasings) per captioned view.
    captions_per_view: int = 3

    @property
    def total_houses(self) -> int:
        """Number of houses over all splits."""
        return self.train_houses + self.val_unseen_houses + self.test_houses

    def to_dict(self) -> dict:
        """The preset as a JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


PRESETS: dict[str, WorldPreset] = {
    p.name: p
    for p in (
        WorldPreset(
            "tiny",
            train_houses=3,
            val_unseen_houses=1,
            test_houses=1,
            rooms=(5, 6),
            paths_per_house=8,
            val_seen_paths_per_house=3,
            face_size=64,
            captions_per_viewpoint=3,
        ),
        WorldPreset("small", train_houses=60, val_unseen_houses=10, test_houses=10),
        WorldPreset(
            "medium",
            train_houses=150,
            val_unseen_houses=20,
            test_houses=20,
            rooms=(6, 8),
            paths_per_house=30,
            val_seen_paths_per_house=5,
        ),
    )
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> WorldPreset:
    """The named preset; :class:`DataError` listing the choices otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise DataError(
            "preset", f"unknown preset {name!r}, choose one of {PRESET_NAMES}"
        ) from None
