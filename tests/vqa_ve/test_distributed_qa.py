"""train-qa under torchrun: 2 CPU processes (gloo) end with the weights of 1 process on the
same global batch, and only rank 0 writes the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from two_processes import assert_same_weights, run_two_processes

from envs.fileio import write_json
from vln_agent.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: No dropout: no random draw differs between 1 and 2 processes. AdamW at 1e-3 over 3 steps;
#: gradients averaged over ranks differ from one process's by rounding only.
SETTINGS = {
    "task": "vqa",
    "iterations": 3,
    "batch_size": 8,
    "eval_every": 3,
    "eval_limit": 20,
    "log_every": 1,
    "hidden_size": 32,
    "num_heads": 2,
    "num_layers": 1,
    "dropout": 0.0,
    "device": "cpu",
}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def vqa_features(tiny_synthetic_world: Path, tmp_path_factory: pytest.TempPathFactory):
    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    torch.manual_seed(0)
    encoder = create_encoder("clipvil-tiny")
    folder = tmp_path_factory.mktemp("qa-features")
    files = []
    for name in ("train2014", "val2014"):
        files.append(folder / f"{name}.h5")
        extract_image_features(
            tiny_synthetic_world / "qa" / "vqa" / name,
            encoder,
            files[-1],
            grid=True,
            progress=False,
            workers=0,
        )
    return files


def test_torchrun_matches_one_process_and_only_rank0_writes(
    tiny_synthetic_world, vqa_features, tmp_path
):
    settings = tmp_path / "settings.json"
    write_json(settings, SETTINGS)
    command = ["train-qa", "--data", tiny_synthetic_world / "qa", "--config", settings]
    command += ["--no-progress", "--features", *vqa_features]
    finished = run_two_processes([*command, "--out", tmp_path / "two"], tmp_path / "logs")
    assert finished.returncode == 0, finished.stderr[-3000:]
    two = tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == [
        "best.pt",
        "latest.pt",
        "log.csv",
        "tensorboard",
    ]
    assert main([str(a) for a in [*command, "--out", tmp_path / "one"]]) == 0
    one_ckpt, two_ckpt = assert_same_weights(
        tmp_path / "one" / "latest.pt", two / "latest.pt", TOLERANCE
    )
    assert one_ckpt["step"] == two_ckpt["step"] == 3
    assert (tmp_path / "one" / "log.csv").read_text().splitlines()[-1].split(",")[-1] == (
        two / "log.csv"
    ).read_text().splitlines()[-1].split(",")[-1]  # the same val accuracy at the end
