"""The shipped recipes (vln_agent/configs): they load, they are what the shipped follower was
trained with, and ``train-vln --config RECIPE`` resumes bit-exactly after an interruption."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io

import pytest
import torch

from checkpoints import checkpoint_path
from envs.errors import DataError
from vln_agent.cli import main
from vln_agent.pretrain.config import PretrainConfig, load_pretrain_config
from vln_agent.speaker_train import SpeakerTrainConfig, load_speaker_train_config
from vln_agent.train import TrainConfig, load_train_config
from vln_agent.training.checkpoint import load_checkpoint
from vln_agent.training.settings import (
    RECIPE_DIR,
    add_settings_flags,
    list_recipes,
    recipe_path,
    settings_fields,
    settings_overrides,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Settings that name data, not the recipe: given on the command line.
DATA_SETTINGS = ("aug_paths", "speaker", "aug_environment_dropout")
LOADERS = {
    "follower": load_train_config,
    "speaker": load_speaker_train_config,
    "clip": load_pretrain_config,
}


def test_every_shipped_recipe_loads_and_is_found_by_name():
    names = list_recipes()
    assert {"follower-stage1", "follower-stage2", "speaker-envdrop", "clip-small-pretrain"} <= set(
        names
    )
    for name in names:
        path = recipe_path(name)
        assert path == RECIPE_DIR / f"{name}.json"
        LOADERS[name.split("-")[0]](path)  # unknown keys or wrong types would raise


def test_stage_two_recipe_is_the_shipped_followers_training():
    payload = load_checkpoint(checkpoint_path("follower-small-clip.pt"), kind="follower")
    saved = dict(payload["train_config"])  # a flat, version-1 record
    recipe = dataclasses.asdict(load_train_config(recipe_path("follower-stage2")))
    model = recipe.pop("model")
    for name in DATA_SETTINGS:
        saved.pop(name), recipe.pop(name)
    architecture = {k: saved.pop(k) for k in list(saved) if k in model}
    assert recipe == saved
    assert architecture == {k: v for k, v in model.items() if k in architecture}
    assert payload["model_config"]["hidden_size"] == model["hidden_size"]


def test_the_shipped_encoder_was_trained_with_the_pretraining_recipe():
    from vln_agent.encoders import read_checkpoint_metadata

    saved = read_checkpoint_metadata(checkpoint_path("clipvil-small-synthetic.pt"))
    recipe = load_pretrain_config(recipe_path("clip-small-pretrain"))
    assert dataclasses.asdict(recipe) == saved["train_config"]


def test_flat_and_sectioned_recipes_are_the_same_settings(tmp_path):
    flat, sectioned = tmp_path / "flat.json", tmp_path / "sectioned.json"
    flat.write_text('{"iterations": 7, "hidden_size": 32, "dropout": 0.1}', encoding="utf-8")
    sectioned.write_text(
        '{"iterations": 7, "model": {"hidden_size": 32, "dropout": 0.1}}', encoding="utf-8"
    )
    assert load_train_config(flat) == load_train_config(sectioned)
    config = load_train_config(flat, hidden_size=64)  # a flag overrides the file
    assert config.model.hidden_size == 64 and config.model.dropout == 0.1
    with pytest.raises(DataError, match="unknown training setting 'hidden_sise'"):
        load_train_config(None, hidden_sise=3)
    with pytest.raises(DataError, match="'model' must be a JSON object"):
        sectioned.write_text('{"model": 3}', encoding="utf-8")
        load_train_config(sectioned)


@pytest.mark.parametrize("cls", [TrainConfig, SpeakerTrainConfig, PretrainConfig])
def test_every_setting_has_a_flag_with_help(cls):
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, cls)
    actions = {a.dest: a for a in parser._actions}
    for name, field, doc in settings_fields(cls):
        if field.metadata.get("derived"):
            assert name not in actions
            continue
        assert doc, f"{cls.__name__}.{name} has no #: comment"
        assert actions[name].help.startswith(doc) and "(default:" in actions[name].help
    args = parser.parse_args(["--seed", "3", "--device", "cpu"])
    overrides = settings_overrides(args, cls)
    assert overrides["seed"] == 3 and overrides["device"] == "cpu"
    assert all(v is None for k, v in overrides.items() if k not in ("seed", "device"))


def _train(argv: list) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main([str(a) for a in argv])


def test_stage_one_recipe_resumed_after_an_interruption_gives_the_same_weights(
    tiny_world, tmp_path
):
    base = ["train-vln", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    base += ["--config", "follower-stage1", "--no-progress", "--device", "cpu"]
    assert _train([*base, "--out", tmp_path / "whole", "--iterations", 20]) == 0
    assert _train([*base, "--out", tmp_path / "cut", "--iterations", 10]) == 0
    assert _train([*base, "--out", tmp_path / "cut", "--iterations", 20, "--resume"]) == 0
    whole = load_checkpoint(tmp_path / "whole" / "latest.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "latest.pt")
    assert whole["step"] == resumed["step"] == 20
    assert whole["train_config"]["feedback"] == "teacher"  # the recipe's, not the default
    assert whole["model_config"]["hidden_size"] == 512
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert whole["metrics"] == resumed["metrics"]
