"""QA data inside the synthetic world: the navigation files keep their bytes, the same
seed gives the same QA bytes, and a world reused without its QA gets it back."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from envs.synthetic.presets import PRESETS
from envs.synthetic.qa.writer import QA_DIR, QA_MANIFEST, build_qa
from envs.synthetic.writer import build_world
from vln_agent.cli import main

#: The seed of the shared tiny world (tests/conftest.py).
TINY_WORLD_SEED = 0


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world_without_qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built through ``clipvil world --no-qa`` (the flag is tested on the way)."""
    out = tmp_path_factory.mktemp("world_without_qa")
    argv = ["world", "--out", str(out), "--preset", "tiny", "--workers", "1", "--no-qa"]
    assert main([*argv, "--seed", str(TINY_WORLD_SEED)]) == 0
    return out


def test_world_files_are_the_same_bytes_with_and_without_qa(
    tiny_synthetic_world: Path, world_without_qa: Path
):
    with_qa = hashes(tiny_synthetic_world)
    without = hashes(world_without_qa)
    assert not (world_without_qa / QA_DIR).exists()
    assert {k: v for k, v in with_qa.items() if not k.startswith(f"{QA_DIR}/")} == without


def test_same_seed_gives_the_same_qa_bytes(
    tiny_synthetic_world: Path, world_without_qa: Path, tmp_path: Path
):
    copy = tmp_path / "world"
    shutil.copytree(world_without_qa, copy)
    build_qa(copy, PRESETS["tiny"], TINY_WORLD_SEED)
    assert hashes(copy / QA_DIR) == hashes(tiny_synthetic_world / QA_DIR)


def test_reusing_a_world_writes_its_missing_qa(tiny_synthetic_world: Path, tmp_path: Path):
    copy = tmp_path / "world"
    shutil.copytree(tiny_synthetic_world, copy)
    shutil.rmtree(copy / QA_DIR)
    build_world(copy, preset="tiny", seed=TINY_WORLD_SEED, workers=1)
    assert (copy / QA_DIR / QA_MANIFEST).is_file()
    assert hashes(copy) == hashes(tiny_synthetic_world)


def test_qa_writer_imports_neither_torch_nor_vqa_ve():
    import subprocess
    import sys

    code = (
        "import sys, envs.synthetic.writer, envs.synthetic.qa.writer; "
        "bad = [m for m in ('torch', 'vqa_ve', 'vln_agent') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
