"""``pretrain-vl`` on the tiny world, then ``train-qa --init`` for the three tasks: named
losses, the QA stage, exact resume, what fine-tuning inherits, end-to-end encoder training
with its own SGD, and one-line errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from envs.errors import DataError
from vln_agent.cli import main
from vln_agent.training.checkpoint import load_checkpoint
from vln_agent.training.optimizers import OptimizerChain
from vqa_ve.models import load_qa_model
from vqa_ve.models.fusion import GRID_POSITIONS, QAModelConfig
from vqa_ve.pretrain.config import PretrainConfig
from vqa_ve.pretrain.model import PRETRAIN_KIND
from vqa_ve.pretrain.objectives import MASK_TOKEN
from vqa_ve.pretrain.trainer import VLPretrainer
from vqa_ve.training.trainer import QATrainConfig, QATrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = QAModelConfig(
    hidden_size=32, num_layers=1, num_heads=2, dropout=0.0, image_positions=GRID_POSITIONS
)
SETTINGS = PretrainConfig(
    iterations=6, batch_size=8, eval_every=3, qa_from=3, log_every=1, device="cpu", model=TINY
)
TASK_FEATURES = {"vqa": ("train2014", "val2014"), "snli-ve": ("snli-ve",), "vcr": ("vcr",)}


def vqa_features(files):
    return [files["train2014"], files["val2014"]]


def pretrain(world, out: Path, config: PretrainConfig = SETTINGS, stop_at=None, resume=False):
    qa, files, _ = world
    trainer = VLPretrainer(qa, vqa_features(files), out, config, resume=resume)
    result = trainer.train(progress=False, stop_at=stop_at)
    return trainer, result


@pytest.fixture(scope="module")
def pretrained(pretrain_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    trainer, result = pretrain(pretrain_world, out)
    return out, trainer, result


def test_pretraining_logs_each_objective_and_adds_qa_in_stage_two(pretrained):
    out, trainer, result = pretrained
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    qa_column = header.index("train/qa_loss")
    trained = [row for row in rows if row[header.index("train/mlm_loss")]]
    assert len(trained) == SETTINGS.iterations
    for row in trained:
        iteration = int(float(row[0]))
        has_qa = row[qa_column] != ""
        assert has_qa == (iteration > SETTINGS.qa_from)  # step qa_from + 1 is the first
        assert 0.0 <= float(row[header.index("train/matched_share")]) <= 1.0
    for key in ("mlm_accuracy", "mlm_accuracy_blind", "itm_accuracy"):
        assert 0.0 <= result[f"val_captions/{key}"] <= 100.0
    for key in ("val2014/accuracy", "pretraining/mean_accuracy"):
        assert 0.0 <= result[key] <= 100.0
    payload = load_checkpoint(out / "best.pt", kind=PRETRAIN_KIND)
    assert payload["vocabulary"][4] == MASK_TOKEN
    assert payload["model_config"]["image_positions"] == GRID_POSITIONS
    assert payload["model_config"]["grid_height"] ** 2 == payload["model_config"]["num_regions"]
    assert any(name.startswith("mlm_") for name in payload["state_dict"])


def test_pretraining_resumes_exactly(pretrain_world, tmp_path):
    config = dataclasses.replace(SETTINGS, model=dataclasses.replace(TINY, dropout=0.1))
    straight, _ = pretrain(pretrain_world, tmp_path / "straight", config)
    pretrain(pretrain_world, tmp_path / "killed", config, stop_at=4)  # inside stage 2
    resumed, _ = pretrain(pretrain_world, tmp_path / "killed", config, resume=True)
    ours, theirs = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_grid_sampling_trains_on_a_subset_of_cells(pretrain_world, tmp_path):
    config = dataclasses.replace(SETTINGS, model=dataclasses.replace(TINY, grid_sample=5))
    trainer, result = pretrain(pretrain_world, tmp_path / "sampled", config)
    assert math.isfinite(result["val_captions/mlm_loss"])
    image = torch.randn(2, trainer.model_config.num_regions, trainer.model_config.feature_dim)
    trainer.model.train()
    picked, cells = trainer.model.fusion.sample_cells(image)
    assert picked.shape[1] == 5 and cells.shape == (2, 5)
    assert torch.equal(picked[1], image[1, cells[1]])
    trainer.model.eval()
    assert trainer.model.fusion.sample_cells(image)[1] is None  # evaluation sees every cell


@pytest.mark.parametrize("task", ["vqa", "snli-ve", "vcr"])
def test_fine_tuning_starts_from_the_pretrained_transformer(
    pretrain_world, pretrained, task, tmp_path
):
    qa, files, _ = pretrain_world
    out, pretrainer, _ = pretrained
    config = QATrainConfig(
        task=task,
        iterations=2,
        batch_size=4,
        eval_every=2,
        eval_limit=8,
        device="cpu",
        init=str(out / "best.pt"),
        model=QAModelConfig(hidden_size=64, num_layers=2),  # the checkpoint's size wins
    )
    features = [files[name] for name in TASK_FEATURES[task]]
    trainer = QATrainer(qa, features, tmp_path / task, config)
    source = load_checkpoint(out / "best.pt")
    vocabulary = source["vocabulary"]
    assert list(trainer.tokenizer.vocab[: len(vocabulary)]) == vocabulary  # ids kept
    assert trainer.model_config.hidden_size == 32 and trainer.model_config.num_layers == 1
    state = trainer.model.state_dict()
    for name, value in source["state_dict"].items():
        inner = name.removeprefix("fusion.")
        if name == inner or inner.startswith("head."):
            continue
        if inner == "word_embedding.weight":
            assert torch.equal(state[inner][: len(vocabulary)], value)
        else:
            assert torch.equal(state[inner], value), inner
    result = trainer.train(progress=False)
    assert result
    model, _, payload = load_qa_model(tmp_path / task / "best.pt")
    assert payload["extra"]["init"]["path"] == str(out / "best.pt")
    assert model.config.image_positions == GRID_POSITIONS


def test_fine_tuning_refuses_features_of_another_encoder(pretrain_world, pretrained, tmp_path):
    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    qa, files, _ = pretrain_world
    torch.manual_seed(1)
    other = create_encoder("clipvil-tiny")
    weights = tmp_path / "other.pt"
    torch.save(other.model.state_dict(), weights)
    other = create_encoder("clipvil-tiny", str(weights))
    features = tmp_path / "other.h5"
    extract_image_features(
        qa / "snli_ve" / "images",
        other,
        features,
        grid=True,
        progress=False,
        workers=0,
        attrs={"pretrained": str(weights)},
    )
    config = QATrainConfig(
        task="snli-ve", iterations=1, device="cpu", init=str(pretrained[0] / "best.pt")
    )
    with pytest.raises(DataError, match="another encoder"):
        QATrainer(qa, [features], tmp_path / "run", config)


def test_end_to_end_encoder_trains_with_its_own_sgd_and_carries_into_fine_tuning(
    pretrain_world, tmp_path
):
    qa, _, weights = pretrain_world
    config = dataclasses.replace(
        SETTINGS,
        iterations=2,
        eval_every=2,
        eval_limit=8,
        qa_split="",
        image_encoder=str(weights),
        encoder_model="clipvil-tiny",
        finetune_encoder=True,
        encoder_learning_rate=0.05,
    )
    trainer = VLPretrainer(qa, [], tmp_path / "e2e", config)
    assert isinstance(trainer.optimizer, OptimizerChain)
    sgd = trainer.optimizer.optimizers[1]
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == 0.05
    before = {k: v.clone() for k, v in trainer.model.image_encoder.state_dict().items()}
    trainer.train(progress=False)
    after = trainer.model.image_encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the encoder moved
    fine = QATrainConfig(
        task="snli-ve",
        iterations=1,
        batch_size=4,
        eval_every=1,
        eval_limit=4,
        device="cpu",
        init=str(tmp_path / "e2e" / "best.pt"),
    )
    with pytest.raises(DataError, match="trained image encoder"):
        QATrainer(qa, [pretrain_world[1]["snli-ve"]], tmp_path / "ft", fine)
    tuned = QATrainer(qa, [], tmp_path / "ft", fine)
    encoder = tuned.model.image_encoder.state_dict()
    assert all(torch.equal(encoder[k], after[k]) for k in after)  # the pretrained encoder
    tuned.train(progress=False)
    model, _, _ = load_qa_model(tmp_path / "ft" / "best.pt")
    assert hasattr(model, "image_encoder")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "JSON"),
        (json.dumps({"images": []}), "annotations"),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg"}],
                    "annotations": [{"image_id": 2, "id": 1, "caption": "x"}],
                }
            ),
            "image",
        ),
    ],
)
def test_a_malformed_captions_file_is_a_one_line_error_and_a_failed_exit(
    pretrain_world, tmp_path, capsys, content, problem
):
    qa, files, _ = pretrain_world
    captions = write(tmp_path / "captions.json", content)
    code = main(
        [
            "pretrain-vl",
            "--data",
            str(qa),
            "--features",
            str(files["train2014"]),
            "--out",
            str(tmp_path / "run"),
            "--train-captions",
            str(captions),
            "--iterations",
            "1",
            "--qa-from",
            "0",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code != 0
    assert str(captions) in error and len(error.splitlines()) == 1
    assert problem.lower() in error.lower()
    assert not (tmp_path / "run" / "latest.pt").exists()


def test_a_missing_image_feature_is_named(pretrain_world, tmp_path):
    qa, files, _ = pretrain_world
    with pytest.raises(DataError, match="no features for image"):
        VLPretrainer(qa, [files["val2014"]], tmp_path / "run", SETTINGS)  # train images lack


def test_the_shipped_recipe_loads_and_blind_evaluation_ignores_the_image(pretrained):
    from vqa_ve.pretrain.trainer import load_pretrain_config

    recipe = load_pretrain_config("pretrain-vl")
    assert 0 < recipe.qa_from < recipe.iterations and recipe.model.image_positions == GRID_POSITIONS
    _, trainer, _ = pretrained
    captions = trainer.val_captions[:8]
    from vqa_ve.pretrain.data import caption_pool, collate_captions

    batch = collate_captions(
        captions,
        caption_pool(trainer.val_captions),
        trainer.tokenizer,
        trainer.features,
        40,
        0.15,
        0.5,
        torch.Generator().manual_seed(0),
    )
    trainer.model.eval()
    with torch.no_grad():
        seeing = trainer.model.caption_outputs(batch)[0]
        blind = trainer.model.caption_outputs(batch, blind=True)[0]
        zeroed = dataclasses.replace(batch, image=torch.zeros_like(batch.image))
        assert torch.equal(blind, trainer.model.caption_outputs(zeroed)[0])
        assert not torch.allclose(seeing, blind)


def test_a_fine_tuning_run_from_a_pretrained_checkpoint_resumes_exactly(
    pretrain_world, pretrained, tmp_path
):
    qa, files, _ = pretrain_world
    config = QATrainConfig(
        task="snli-ve",
        iterations=4,
        batch_size=4,
        eval_every=2,
        eval_limit=8,
        device="cpu",
        init=str(pretrained[0] / "best.pt"),
    )
    straight = QATrainer(qa, [files["snli-ve"]], tmp_path / "straight", config)
    straight.train(progress=False)
    QATrainer(qa, [files["snli-ve"]], tmp_path / "killed", config).train(progress=False, stop_at=2)
    resumed = QATrainer(qa, [files["snli-ve"]], tmp_path / "killed", config, resume=True)
    resumed.train(progress=False)
    ours, theirs = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    other = dataclasses.replace(config, init="")
    with pytest.raises(DataError, match="another checkpoint|vocabulary|another model"):
        QATrainer(qa, [files["snli-ve"]], tmp_path / "killed", other, resume=True)
