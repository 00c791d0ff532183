"""Images per second of panorama feature extraction against the encoder's own ceiling.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_extract [--data DIR] [--models clipvil-small,ViT-B-32]

For each model (random init, native image size), on the same machine in the same run:

* ceiling: the encoder's batched forward pass on ready tensors (``batch_size * 36`` images);
* extract_features: the whole pipeline (skybox decode, view rendering, normalization,
  encoding, HDF5 writing) on the first viewpoints of the data root;
* plain loop: per viewpoint decode, render the 36 views, encode them, write, one after the
  other with no overlap (what CLIP-ViL's extractor does with MatterSim).

The three cases take turns in each round so that the load of other
jobs hits them alike; medians over rounds. The ratios are what to compare across machines.
CPU ms/image is this process's CPU time (all its threads) per image: on a machine shared
with other jobs, a case with more threads gets a larger share of the cores, so compare the
CPU column too (on an idle machine, images/s is about cores / CPU seconds per image).
Without ``--data`` a ``tiny`` synthetic world is built in a temporary folder (seconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.constants import NUM_VIEWS
from envs.features.hdf5 import HDF5FeatureWriter
from vln_agent.encoders import CLIPEncoder, create_encoder
from vln_agent.extract import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    extract_features,
    list_viewpoints,
    render_viewpoint,
)

#: Models measured by default, with the viewpoints encoded per timed run and the repeats
#: (ViT-B-32 takes seconds per viewpoint on a small CPU).
DEFAULT_MODELS = {"clipvil-small": (16, 3), "ViT-B-32": (4, 1)}


@dataclass
class Timing:
    """Medians of one case: wall seconds, and CPU seconds of this process (all threads)."""

    wall: float
    cpu: float


def interleaved_medians(cases: list[Callable[[], object]], repeats: int) -> list[Timing]:
    """Median wall and CPU time of each case, the cases taking turns in every round, so
    that a change in the machine's load hits them alike."""
    times: list[list[tuple[float, float]]] = [[] for _ in cases]
    for _ in range(repeats):
        for case, case_times in zip(cases, times, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            case()
            case_times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [
        Timing(statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for ts in times
    ]


def warm_up(data: Path, encoder: CLIPEncoder, out: Path) -> None:
    """One viewpoint through the pipeline: first-call costs (kernels, caches) stay untimed."""
    end_to_end(data, encoder, out, 1, 1, 1)()


def ceiling(encoder: CLIPEncoder, count: int, batch_size: int) -> Callable[[], object]:
    """Batched forward passes over ``count * 36`` ready images, ``batch_size * 36`` at a time."""
    size = encoder.image_size[0]
    images = torch.randn(batch_size * NUM_VIEWS, 3, size, size)  # [B * 36, 3, S, S]
    batches = -(-count // batch_size)

    def forward() -> object:
        with torch.inference_mode():
            return [encoder.encode_image(images) for _ in range(batches)]

    return forward


def end_to_end(
    data: Path, encoder: CLIPEncoder, out: Path, count: int, batch_size: int, workers: int
) -> Callable[[], object]:
    """:func:`extract_features` of the first ``count`` viewpoints into a fresh file."""

    def run() -> object:
        out.unlink(missing_ok=True)
        return extract_features(
            data,
            encoder,
            out,
            batch_size=batch_size,
            workers=workers,
            progress=False,
            limit=count,
        )

    return run


def plain_loop(data: Path, encoder: CLIPEncoder, out: Path, count: int) -> Callable[[], object]:
    """Decode, render, encode and write one viewpoint after the other."""
    viewpoints = list_viewpoints(data)[:count]
    size = encoder.image_size[0]

    def run() -> object:
        out.unlink(missing_ok=True)
        with HDF5FeatureWriter(out, encoder.embed_dim, dtype="float32") as writer:
            for item in viewpoints:
                pixels = render_viewpoint(data, item, size)  # [36, S, S, 3]
                with torch.inference_mode():
                    features = encoder.encode_image(encoder.pixels_to_input(pixels))  # [36, E]
                writer.add(item.scan, item.viewpoint, features.numpy())
        return None

    return run


def measure(args: argparse.Namespace, data: Path, model: str, tmp: Path) -> None:
    count, repeats = DEFAULT_MODELS.get(model, (16, 3))
    count = args.viewpoints or count
    repeats = args.repeats or repeats
    available = len(list_viewpoints(data))
    if count > available:
        raise SystemExit(f"{data} has {available} viewpoints, fewer than {count}")
    torch.manual_seed(0)
    encoder = create_encoder(model)
    size = encoder.image_size[0]
    out = tmp / f"{model}.h5"
    images = count * NUM_VIEWS
    warm_up(data, encoder, out)
    load = os.getloadavg()[0]
    timings = interleaved_medians(
        [
            ceiling(encoder, count, args.batch_size),
            end_to_end(data, encoder, out, count, args.batch_size, args.workers),
            plain_loop(data, encoder, out, count),
        ],
        repeats,
    )
    batches = -(-count // args.batch_size)
    counts = (batches * args.batch_size * NUM_VIEWS, images, images)
    names = ("ceiling (forward pass only)", "extract_features", "plain loop (no overlap)")
    rates = [n / t.wall for n, t in zip(counts, timings, strict=True)]
    cpu_ms = [1000 * t.cpu / n for n, t in zip(counts, timings, strict=True)]
    print(
        f"\n{model} ({size} px, E={encoder.embed_dim}): {count} viewpoints x {NUM_VIEWS} views, "
        f"batch {args.batch_size} viewpoints, {args.workers} render threads, "
        f"{torch.get_num_threads()} torch threads, median of {repeats}, "
        f"load {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        f"| {'case':<28} | {'images/s':>9} | {'of ceiling':>10} | {'vs plain':>8} "
        f"| {'CPU ms/image':>12} |"
    )
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 12}|{'-' * 10}|{'-' * 14}|")
    for name, rate, cpu in zip(names, rates, cpu_ms, strict=True):
        print(
            f"| {name:<28} | {rate:>9.1f} | {rate / rates[0]:>10.0%} | "
            f"{rate / rates[2]:>7.2f}x | {cpu:>12.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="data root (default: a fresh tiny world)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--viewpoints", type=int, help="viewpoints per timed run")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(f"{os.cpu_count()} CPUs; the load average is the whole machine's (other jobs too)")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from envs.synthetic.writer import build_world

            data = Path(tmp) / "world"
            build_world(data, preset="tiny", seed=0, workers=1)
        for model in args.models.split(","):
            measure(args, data, model, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
