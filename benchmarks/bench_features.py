"""Random-access read speed of an HDF5 feature store (R2R-sized file).

Writes a float16 file of 10,567 viewpoints x [36, 768] (the R2R viewpoint set with
CLIP ViT-B/16 features, about 620 MB with checksums) in a temporary folder, then
reads viewpoints in random order through ``open_features`` and prints a table.
The file was just written, so reads are served from the OS page cache, not the disk.

    .venv/bin/python benchmarks/bench_features.py [--viewpoints N] [--reads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.constants import NUM_VIEWS
from envs.features import HDF5FeatureWriter, open_features

#: Viewpoints in the R2R connectivity graphs (all 90 scans).
R2R_VIEWPOINTS = 10_567
FEATURE_DIM = 768
CACHE_SIZE = 4096


@dataclass
class Row:
    """One line of the result table."""

    case: str
    count: int
    seconds: float
    hit_rate: float | None = None

    def __str__(self) -> str:
        rate = self.count / self.seconds
        hits = "" if self.hit_rate is None else f"{self.hit_rate:8.0%}"
        return f"{self.case:<44}{self.count:>8}{self.seconds:>9.2f}{rate:>12,.0f}{hits:>9}"


def write_file(path: Path, viewpoints: int, rng: np.random.Generator) -> Row:
    """Write ``viewpoints`` random float16 [36, 768] arrays, flushing after each one."""
    block = rng.standard_normal((NUM_VIEWS, FEATURE_DIM)).astype(np.float32)  # [36, D]
    start = time.perf_counter()
    with HDF5FeatureWriter(path, FEATURE_DIM, dtype="float16") as writer:
        for i in range(viewpoints):
            writer.add("scan", f"{i:032x}", block + i * 1e-3)
    return Row("write float16, flush after every add", viewpoints, time.perf_counter() - start)


def read_random(
    path: Path, case: str, order: np.ndarray, cache_size: int, warm: np.ndarray | None = None
) -> Row:
    """Time ``get`` over ``order`` (indices of viewpoints), after reading ``warm`` untimed."""
    with open_features(path, cache_size=cache_size) as store:
        keys = list(store.keys())
        for i in warm if warm is not None else ():
            store.get(*keys[i])
        hits_before = store.cache_hits
        start = time.perf_counter()
        for i in order:
            store.get(*keys[i])
        seconds = time.perf_counter() - start
        hits = store.cache_hits - hits_before
    return Row(case, len(order), seconds, hits / len(order))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewpoints", type=int, default=R2R_VIEWPOINTS)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        rows = [write_file(path, args.viewpoints, rng)]
        size_mb = path.stat().st_size / 1e6
        uniform = rng.integers(0, args.viewpoints, args.reads)
        hot = rng.permutation(args.viewpoints)[:CACHE_SIZE]
        rows += [
            read_random(path, "random, no cache (cache_size=0)", uniform, cache_size=0),
            read_random(path, f"random, cache {CACHE_SIZE} (starts empty)", uniform, CACHE_SIZE),
            read_random(
                path,
                f"random over {CACHE_SIZE} cached (all hits)",
                rng.choice(hot, args.reads),
                CACHE_SIZE,
                warm=hot,
            ),
        ]
    print(f"{args.viewpoints} viewpoints x [36, {FEATURE_DIM}] float16, {size_mb:.0f} MB")
    print(f"{'case':<44}{'count':>8}{'seconds':>9}{'viewpoint/s':>12}{'hits':>9}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
