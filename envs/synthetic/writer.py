"""``build_world``: write a complete synthetic data root in the real R2R / Matterport layouts.

::

    DIR/connectivity/{scan}_connectivity.json, DIR/connectivity/scans.txt
    DIR/R2R_{train,val_seen,val_unseen,test}.json
    DIR/v1/scans/{scan}/matterport_skybox_images/{viewpoint}_skybox{0..5}_sami.jpg
    DIR/scenes/{scan}.json           (ground truth, see envs.synthetic.scene)
    DIR/captions.json                (image-caption pairs for contrastive pretraining)
    DIR/qa/                          (VQA v2 / SNLI-VE files, see envs.synthetic.qa.writer)
    DIR/manifest.json                (written last: a directory with it is complete)

Houses are built independently (in ``workers`` processes) from per-house seeds, so the
same seed gives byte-identical JSON and identical images however many workers run.

A build killed at any point (``kill -9`` included) leaves a directory that the same
command clears and builds again, to the very bytes of an uninterrupted build: the build
marker claims the directory before anything in it is removed, and the manifest is written
last. Only then is the marker removed.
val_seen holds new paths in the train houses; val_unseen and test have houses of their
own. As in R2R, test paths list only their start viewpoint and have no distance.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from envs.constants import R2R_SPLITS
from envs.errors import DataError
from envs.fileio import atomic_write, read_json, write_json
from envs.graph import CONNECTIVITY_DIR, SCANS_FILE
from envs.synthetic.house_files import HOUSE_SPLITS, HouseTask, build_house_files
from envs.synthetic.presets import PRESET_NAMES, PRESETS, WorldPreset
from envs.synthetic.qa.writer import QA_DIR, build_qa
from envs.synthetic.scene import SCENES_DIR

GENERATOR = "clipvil.synthetic-world"
#: Bump when the same seed and preset would give different files.
GENERATOR_VERSION = 1
MANIFEST_FILE = "manifest.json"
CAPTIONS_FILE = "captions.json"
#: Written when a build starts and removed when it ends: marks a directory as ours.
BUILD_MARKER = ".world-build"
DEFAULT_WORKERS = 2
#: Keys of an R2R entry, in the order of the real files; the test split has no distance.
R2R_KEYS = ("distance", "scan", "path_id", "path", "heading", "instructions")
TEST_KEYS = ("scan", "path_id", "path", "heading", "instructions")
#: What a build owns in DIR (removed before a rebuild; nothing else is touched).
OWNED_PATHS = (
    CONNECTIVITY_DIR,
    SCENES_DIR,
    "v1",
    CAPTIONS_FILE,
    QA_DIR,
    *(f"R2R_{s}.json" for s in R2R_SPLITS),
)


def manifest_identity(preset: WorldPreset, seed: int) -> dict:
    """The manifest fields that decide whether an existing world can be reused."""
    return {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "preset": preset.name,
        "preset_config": preset.to_dict(),
        "face_size": preset.face_size,
    }


def read_manifest(out_dir: str | os.PathLike[str]) -> dict | None:
    """The manifest of a finished world in ``out_dir``, or None when there is none."""
    path = Path(out_dir) / MANIFEST_FILE
    return read_json(path) if path.is_file() else None


def _check_arguments(out_dir: Path, preset: str, seed: int, workers: int | None) -> WorldPreset:
    if preset not in PRESETS:
        raise DataError(
            out_dir, f"unknown preset {preset!r}, choose one of {', '.join(PRESET_NAMES)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(out_dir, f"seed must be a non-negative integer, got {seed!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise DataError(out_dir, f"workers must be a positive integer, got {workers!r}")
    return PRESETS[preset]


def _leftover_temps(out_dir: Path) -> list[Path]:
    """Temporary files of our top-level files that a killed atomic write left behind
    (``envs.fileio.atomic_write`` writes ``.{name}.{random}.tmp`` beside ``name``)."""
    names = [*OWNED_PATHS, MANIFEST_FILE, BUILD_MARKER]
    return [p for name in names for p in out_dir.glob(f".{glob.escape(name)}.*.tmp")]


def _clear(out_dir: Path, claim: str) -> None:
    """Remove a previous (finished or interrupted) world; refuse to touch foreign data.

    The build marker (holding ``claim``) is written before anything is removed, so a kill
    while clearing leaves a directory that the next build still recognises as its own.
    """
    ours = (out_dir / BUILD_MARKER).exists()
    if (out_dir / MANIFEST_FILE).is_file():
        ours = ours or (read_json(out_dir / MANIFEST_FILE) or {}).get("generator") == GENERATOR
    temps = _leftover_temps(out_dir) if out_dir.is_dir() else []
    if not ours and out_dir.is_dir() and any(p not in temps for p in out_dir.iterdir()):
        raise DataError(out_dir, "not empty and not a synthetic world; refusing to overwrite it")
    with atomic_write(out_dir / BUILD_MARKER) as f:
        f.write(claim)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for path in [*(out_dir / name for name in OWNED_PATHS), *temps]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _finish_reuse(out_dir: Path) -> None:
    """A finished world found again: drop a marker and temporary files that a build killed
    right after its manifest (or a rebuild killed before removing anything) left."""
    for path in [out_dir / BUILD_MARKER, *_leftover_temps(out_dir)]:
        path.unlink(missing_ok=True)


def _tasks(out_dir: Path, preset: WorldPreset, seed: int) -> list[HouseTask]:
    counts = {
        "train": preset.train_houses,
        "val_unseen": preset.val_unseen_houses,
        "test": preset.test_houses,
    }
    return [
        HouseTask(str(out_dir), split, i, seed, preset)
        for split in HOUSE_SPLITS
        for i in range(counts[split])
    ]


def _run(tasks: list[HouseTask], workers: int) -> Iterator[dict]:
    """Results of ``build_house_files`` in task order, from ``workers`` processes."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(build_house_files, tasks)
        return
    context = multiprocessing.get_context("spawn")  # safe whatever the parent has imported
    with context.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(build_house_files, tasks)


def _r2r_splits(results: list[dict]) -> dict[str, list[dict]]:
    """R2R records per split, numbered with path ids unique across the splits."""
    splits: dict[str, list[dict]] = {s: [] for s in R2R_SPLITS}
    for result in results:
        for item in result["paths"]:
            splits[item["split"]].append(item["record"])
    path_id = 0
    for split in R2R_SPLITS:
        numbered = []
        for record in splits[split]:
            path_id += 1
            keys = TEST_KEYS if split == "test" else R2R_KEYS
            entry = {**record, "path_id": path_id}
            if split == "test":  # R2R's test split gives only the start viewpoint
                entry["path"] = record["path"][:1]
            numbered.append({key: entry[key] for key in keys})
        splits[split] = numbered
    return splits


def _manifest(
    preset: WorldPreset, seed: int, results: list[dict], splits: dict[str, list[dict]]
) -> dict:
    captions = [c for r in results for c in r["captions"]]
    houses = {s: sum(r["split"] == s for r in results) for s in HOUSE_SPLITS}
    return {
        **manifest_identity(preset, seed),
        "counts": {
            "houses": houses,
            "scans": len(results),
            "viewpoints": sum(r["viewpoints"] for r in results),
            "edges": sum(r["edges"] for r in results),
            "paths": {s: len(v) for s, v in splits.items()},
            "instructions": {s: sum(len(e["instructions"]) for e in v) for s, v in splits.items()},
            "images": sum(r["images"] for r in results),
            "captions": len(captions),
            "caption_texts": sum(len(c["captions"]) for c in captions),
        },
    }


def build_world(
    out_dir: str | os.PathLike[str],
    preset: str = "small",
    seed: int = 0,
    workers: int | None = None,
    on_house_done: Callable[[], object] | None = None,
    qa: bool = True,
) -> dict:
    """Write a synthetic world to ``out_dir`` and return its manifest.

    A directory that already holds a world with the same generator version, preset and
    seed is returned as it is; one with a different world is cleared and rebuilt.

    Args:
        out_dir: the data root to write.
        preset: name of a :data:`~envs.synthetic.presets.PRESETS` entry.
        seed: non-negative integer; the same seed gives the same files.
        workers: processes rendering houses (default: 2, at most the CPU count).
        on_house_done: called once per finished house (e.g. a progress bar's ``update``).
        qa: also write ``DIR/qa/`` (after the manifest, from its own random stream: the
            other files are the same bytes with or without it).

    Raises:
        DataError: bad preset, seed or workers, or ``out_dir`` holds foreign data.
    """
    out = Path(out_dir)
    config = _check_arguments(out, preset, seed, workers)
    existing = read_manifest(out)
    identity = manifest_identity(config, seed)
    if existing is not None and all(existing.get(k) == v for k, v in identity.items()):
        _finish_reuse(out)
        if qa:
            build_qa(out, config, seed)
        return existing
    _clear(out, claim=f"{GENERATOR} {preset} {seed}\n")
    tasks = _tasks(out, config, seed)
    workers = workers if workers is not None else min(DEFAULT_WORKERS, os.cpu_count() or 1)
    results = []
    for result in _run(tasks, workers):
        results.append(result)
        if on_house_done is not None:
            on_house_done()
    scans = [r["scan"] for r in results]
    if len(set(scans)) != len(scans):
        raise RuntimeError("two houses drew the same scan id; use another seed")
    with atomic_write(out / CONNECTIVITY_DIR / SCANS_FILE) as f:
        f.write("".join(f"{scan}\n" for scan in sorted(scans)))
    splits = _r2r_splits(results)
    for split, records in splits.items():
        write_json(out / f"R2R_{split}.json", records, indent=None)
    write_json(out / CAPTIONS_FILE, [c for r in results for c in r["captions"]], indent=None)
    manifest = _manifest(config, seed, results, splits)
    write_json(out / MANIFEST_FILE, manifest)
    (out / BUILD_MARKER).unlink()
    if qa:
        build_qa(out, config, seed)
    return manifest
