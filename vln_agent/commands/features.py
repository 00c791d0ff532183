"""``clipvil features``: encode every viewpoint's 36 views (``--data``), or every image of
a folder (``--images``, :mod:`vln_agent.extract_images`: pooled ``[E]`` per image id, plus
``[h * w, C]`` grid features with ``--grid``), into an HDF5 feature file.

The paper's three image towers share the architecture and this pipeline:

* ``--encoder clip``: CLIP weights, a pretrained tag (``openai``) or a weight file;
* ``--encoder supervised``: a checkpoint of ``clipvil pretrain-supervised`` (a clipvil
  encoder checkpoint whose metadata says ``"encoder_kind": "supervised"``);
* ``--encoder random``: a random init of ``--model`` drawn with ``--seed``.

``--model`` may be left out when ``--pretrained`` is a clipvil checkpoint: the file records
its model name.

:func:`vln_agent.encoders.create_encoder_of_kind` builds the encoder and checks the options.
The features are :meth:`~vln_agent.encoders.CLIPEncoder.encode_image` of RGB views (see
:mod:`vln_agent.extract`); the file records the model, weights, kind and image size.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vln_agent.encoders import CLIPEncoder

NAME = "features"
HELP = (
    "Render and encode the 36 views of every viewpoint (--data), or every image of a folder "
    "(--images), into an HDF5 feature file."
)

#: The choices of ``--encoder``: :data:`vln_agent.encoders.kinds.ENCODER_KINDS` (kept here
#: too so that building the parser does not import torch).
ENCODER_KINDS = ("clip", "supervised", "random")


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _positive(text: str) -> int:
    return _integer(text, 1)


def _non_negative(text: str) -> int:
    return _integer(text, 0)


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.extract_defaults import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_IMAGE_BATCH_SIZE,
        DEFAULT_WORKERS,
    )

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=Path, help="data root (connectivity/, v1/scans/ skyboxes): panoramas"
    )
    source.add_argument(
        "--images",
        type=Path,
        help="folder of .jpg/.png images, subfolders included (VCR's vcr1images/): one feature "
        "per image, keyed by the file stem",
    )
    parser.add_argument(
        "--grid",
        action="store_true",
        help="with --images: also store [h*w, C] grid features (ViT patch tokens / ResNet "
        "layer4) beside the pooled [E] ones",
    )
    parser.add_argument(
        "--model",
        help="open_clip or clipvil model name (default: the one a clipvil checkpoint given "
        "as --pretrained records; required otherwise)",
    )
    parser.add_argument(
        "--pretrained",
        help="weights: a pretrained tag or a weight file (clip), a checkpoint (supervised)",
    )
    parser.add_argument(
        "--encoder",
        choices=ENCODER_KINDS,
        default="clip",
        help="how the image tower was trained (default: clip)",
    )
    parser.add_argument(
        "--seed", type=_non_negative, default=0, help="seed of --encoder random (default: 0)"
    )
    parser.add_argument("--out", type=Path, required=True, help="HDF5 file to write (.h5)")
    parser.add_argument("--scans", help="comma-separated scans (default: every scan)")
    parser.add_argument(
        "--float16", action="store_true", help="store float16 (half the size; default float32)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        help=f"viewpoints per encoder batch, 36 images each (default: {DEFAULT_BATCH_SIZE}); "
        f"with --images: images per batch (default: {DEFAULT_IMAGE_BATCH_SIZE})",
    )
    parser.add_argument(
        "--workers",
        type=_non_negative,
        default=DEFAULT_WORKERS,
        help=f"threads that decode and render (default: {DEFAULT_WORKERS}; 0: no overlap)",
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        help="torch threads for encoding (default: torch's own; on a CPU shared with other "
        "jobs fewer threads, even 1, can be faster: idle threads spin at every barrier)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to encode (default: cpu)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="encoder arithmetic; bf16 and fp16 autocast, fp16 on a GPU only (default: fp32)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--limit", type=_non_negative, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import torch

    from envs.errors import DataError
    from vln_agent.encoders import create_encoder_of_kind
    from vln_agent.extract_defaults import DEFAULT_BATCH_SIZE, DEFAULT_IMAGE_BATCH_SIZE

    if args.grid and args.images is None:
        raise DataError("--grid", "needs --images (panorama features are pooled only)")
    if args.scans and args.images is not None:
        raise DataError("--scans", "selects panoramas of --data, not images of --images")
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH_SIZE if args.images is None else DEFAULT_IMAGE_BATCH_SIZE
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder, attrs = create_encoder_of_kind(
        args.encoder,
        args.model,
        args.pretrained,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
    )
    if args.images is not None:
        return _run_images(args, encoder, attrs)
    from vln_agent.extract import extract_features

    scans = [s for s in args.scans.split(",") if s] if args.scans else None
    result = extract_features(
        args.data,
        encoder,
        args.out,
        scans,
        batch_size=args.batch_size,
        workers=args.workers,
        dtype="float16" if args.float16 else "float32",
        progress=not args.no_progress,
        limit=args.limit,
        attrs=attrs,
    )
    resumed = result.viewpoints - result.encoded
    print(
        f"wrote [36, {result.feature_dim}] features of {result.viewpoints} viewpoints to "
        f"{result.path}" + (f" ({resumed} kept from an interrupted run)" if resumed else "")
    )
    return 0


def _run_images(args: argparse.Namespace, encoder: CLIPEncoder, attrs: dict[str, str | int]) -> int:
    from vln_agent.extract_images import extract_image_features

    result = extract_image_features(
        args.images,
        encoder,
        args.out,
        grid=args.grid,
        batch_size=args.batch_size,
        workers=args.workers,
        dtype="float16" if args.float16 else "float32",
        progress=not args.no_progress,
        limit=args.limit,
        attrs=attrs,
    )
    kept = result.images - result.encoded
    shape = result.grid_shape
    grid = f" and [{shape[0]}, {shape[1]}] grid" if shape else ""
    print(
        f"wrote [{result.feature_dim}] pooled{grid} features of {result.images} images to "
        f"{result.path}" + (f" ({kept} kept from an interrupted run)" if kept else "")
    )
    return 0
