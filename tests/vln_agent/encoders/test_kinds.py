"""``create_encoder_of_kind``: the clip / supervised / random image towers and their attributes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import pytest
import torch

from envs.errors import DataError
from vln_agent.cli import main
from vln_agent.commands import features
from vln_agent.encoders import (
    ENCODER_KINDS,
    CLIPEncoder,
    create_encoder,
    create_encoder_of_kind,
    save_encoder,
)
from vln_agent.encoders import kinds as kinds_module
from vln_agent.encoders.weights import WeightsSource

MODEL = "clipvil-tiny"


def assert_same_weights(a: CLIPEncoder, b: CLIPEncoder) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key, value in state_a.items():
        torch.testing.assert_close(value, state_b[key], rtol=0, atol=0, msg=key)


def checkpoint_of(encoder: CLIPEncoder, path: Path, kind: str | None) -> Path:
    """A clipvil checkpoint of ``encoder`` whose metadata records ``kind`` (or nothing)."""
    return save_encoder(encoder, path, extra={} if kind is None else {"encoder_kind": kind})


def test_the_cli_choices_are_the_kinds():
    assert features.ENCODER_KINDS == ENCODER_KINDS == ("clip", "supervised", "random")


def test_random_init_is_seeded_and_recorded(tiny_encoder):
    encoder, attrs = create_encoder_of_kind("random", MODEL, seed=0)
    assert attrs == {"encoder_kind": "random", "pretrained": "none", "seed": 0}
    assert_same_weights(encoder, tiny_encoder)  # the fixture: manual_seed(0), then build
    assert not encoder.training and encoder.precision == "fp32"
    again, _ = create_encoder_of_kind("random", MODEL, seed=0)
    other, other_attrs = create_encoder_of_kind("random", MODEL, seed=1)
    assert_same_weights(encoder, again)
    assert other_attrs["seed"] == 1
    assert not torch.equal(encoder.model.text_projection, other.model.text_projection)


@pytest.mark.parametrize(
    ("kind", "stored"),
    [("clip", "clip"), ("clip", None), ("supervised", "supervised"), ("supervised", None)],
)
def test_a_checkpoint_of_the_kind_is_loaded_and_recorded_by_absolute_path(
    tiny_encoder, tmp_path, monkeypatch, kind, stored
):
    monkeypatch.chdir(tmp_path)
    checkpoint_of(tiny_encoder, tmp_path / "enc.pt", stored)
    encoder, attrs = create_encoder_of_kind(kind, MODEL, "enc.pt", seed=7)
    assert attrs == {"encoder_kind": kind, "pretrained": os.path.join(tmp_path, "enc.pt")}
    assert_same_weights(encoder, tiny_encoder)


def test_a_plain_open_clip_state_dict_is_clip_weights(tiny_encoder, tmp_path):
    weights = tmp_path / "state_dict.pt"
    torch.save(tiny_encoder.model.state_dict(), weights)
    encoder, attrs = create_encoder_of_kind("clip", MODEL, weights)
    assert attrs == {"encoder_kind": "clip", "pretrained": str(weights)}
    assert_same_weights(encoder, create_encoder(MODEL, weights))


def test_a_tag_is_recorded_as_the_tag(tiny_encoder, tmp_path, monkeypatch):
    weights = tmp_path / "cached.pt"
    torch.save(tiny_encoder.model.state_dict(), weights)
    source = WeightsSource(path=str(weights), tag="openai")
    monkeypatch.setattr(kinds_module, "resolve_pretrained", lambda name, pretrained: source)
    monkeypatch.setattr(kinds_module, "create_encoder", lambda *args, **kwargs: tiny_encoder)
    assert create_encoder_of_kind("clip", MODEL, "openai")[1] == {
        "encoder_kind": "clip",
        "pretrained": "openai",
    }
    with pytest.raises(DataError) as error:
        create_encoder_of_kind("supervised", MODEL, "openai")
    assert str(error.value) == (
        "openai: is a pretrained tag; --encoder supervised needs a checkpoint of "
        "clipvil pretrain-supervised"
    )


@pytest.mark.parametrize(
    ("kind", "stored"), [("supervised", "clip"), ("clip", "supervised"), ("clip", "random")]
)
def test_a_checkpoint_of_another_kind_is_refused(tiny_encoder, tmp_path, kind, stored):
    path = checkpoint_of(tiny_encoder, tmp_path / "enc.pt", stored)
    with pytest.raises(DataError) as error:
        create_encoder_of_kind(kind, MODEL, path)
    assert str(error.value) == f"{path}: holds a {stored!r} encoder, not {kind!r} (--encoder)"


def test_option_errors_are_one_line(tiny_encoder, tmp_path, monkeypatch):
    path = checkpoint_of(tiny_encoder, tmp_path / "enc.pt", "clip")
    cases = [
        (("random", MODEL, path), {}, f"{path}: --encoder random takes no --pretrained weights"),
        (("clip", MODEL), {}, "--pretrained: required with --encoder clip"),
        (("supervised", MODEL, ""), {}, "--pretrained: required with --encoder supervised"),
        (("imagenet", MODEL), {}, "--encoder: must be one of clip, supervised, random, not "),
        (("random", MODEL), {"precision": "fp16"}, "--precision: precision 'fp16' needs a GPU"),
    ]
    for args, options, problem in cases:
        with pytest.raises(DataError) as error:
            create_encoder_of_kind(*args, **options)
        assert str(error.value).startswith(problem) and "\n" not in str(error.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DataError, match="^--device: cuda asked for, but torch sees no GPU$"):
        create_encoder_of_kind("random", MODEL, device="cuda")


#: The message open_clip logs (root logger, WARNING) for a model built without weights.
RANDOM_INIT_WARNING = "initialized randomly"
#: The one-line error when neither --model nor a clipvil checkpoint names the model.
NO_MODEL_ERROR = (
    "--model: required unless --pretrained is a clipvil checkpoint (which records its model name)"
)


def test_a_random_init_logs_no_warning_and_other_warnings_still_pass(caplog):
    with caplog.at_level(logging.WARNING):
        create_encoder_of_kind("random", MODEL, seed=0)
        create_encoder(MODEL)  # the factory's own random init, as the fixtures build it
    assert [record.getMessage() for record in caplog.records] == []
    logging.warning("No pretrained weights loaded: Model %s", RANDOM_INIT_WARNING)  # scoped
    assert RANDOM_INIT_WARNING in caplog.records[-1].getMessage()


@pytest.mark.parametrize("kind", ["clip", "supervised"])
def test_the_model_name_comes_from_a_clipvil_checkpoint(tiny_encoder, tmp_path, kind):
    path = checkpoint_of(tiny_encoder, tmp_path / "enc.pt", kind)
    encoder, attrs = create_encoder_of_kind(kind, None, path)
    assert encoder.model_name == MODEL and attrs["pretrained"] == str(path)
    assert_same_weights(encoder, tiny_encoder)


def test_no_model_name_given_or_recorded_is_one_line(tiny_encoder, tmp_path):
    state_dict = tmp_path / "state_dict.pt"
    torch.save(tiny_encoder.model.state_dict(), state_dict)
    for args in [("random", None), ("clip", None, state_dict), ("clip", None, None)]:
        with pytest.raises(DataError) as error:
            create_encoder_of_kind(*args)
        assert str(error.value) == NO_MODEL_ERROR


def test_features_needs_no_model_for_a_clipvil_checkpoint(
    tiny_encoder, tiny_synthetic_world, tmp_path, capsys
):
    path = checkpoint_of(tiny_encoder, tmp_path / "enc.pt", "clip")
    out = tmp_path / "features.h5"
    argv = ["features", "--data", str(tiny_synthetic_world), "--out", str(out)]
    argv += ["--limit", "1", "--no-progress"]
    assert main([*argv, "--pretrained", str(path)]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["model_name"] == MODEL and len(f.keys()) == 1
    assert main([*argv, "--encoder", "random"]) == 2
    assert capsys.readouterr().err == f"error: {NO_MODEL_ERROR}\n"
