"""Defaults of :func:`vln_agent.extract.extract_features` and
:func:`vln_agent.extract_images.extract_image_features`, importable without torch (the CLI's
``--help`` must not pay for importing torch)."""

from __future__ import annotations

#: Viewpoints per encoder batch (36 images each).
DEFAULT_BATCH_SIZE = 4
#: Threads that load, render and normalize viewpoints.
DEFAULT_WORKERS = 2
#: Images per encoder batch of an image folder (``clipvil features --images``).
DEFAULT_IMAGE_BATCH_SIZE = 32
