"""``clipvil convert-features``: legacy R2R feature TSV -> HDF5 feature file."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "convert-features"
HELP = "Convert a legacy R2R image-feature TSV (R2R-EnvDrop, CLIP-ViL) into an HDF5 feature file."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tsv", type=Path, required=True, help="legacy feature TSV to read")
    parser.add_argument("--out", type=Path, required=True, help="HDF5 file to write (.h5)")
    parser.add_argument(
        "--float16", action="store_true", help="store float16 (half the size; default float32)"
    )


def run(args: argparse.Namespace) -> int:
    from envs.features import convert_tsv_to_hdf5

    dtype = "float16" if args.float16 else "float32"
    count = convert_tsv_to_hdf5(args.tsv, args.out, dtype=dtype, progress=True)
    print(f"wrote features of {count} viewpoints to {args.out} ({dtype})")
    return 0
