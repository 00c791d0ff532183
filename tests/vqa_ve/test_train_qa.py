"""``clipvil train-qa`` on tiny hand-made VQA / SNLI-VE / VCR files (written with the
vqa_ve.data writers) and a grid feature file: each task overfits, resumes exactly, loads
with ``load_qa_model`` and gives one-line errors on bad input."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from envs.errors import DataError
from vqa_ve.commands import eval_qa, train_qa
from vqa_ve.data.snli_ve import LABELS, SNLIVEExample, write_snli_ve
from vqa_ve.data.vcr import VCRItem, write_vcr
from vqa_ve.data.vqa import (
    VQAAnnotation,
    VQAAnnotationFile,
    VQAAnswer,
    VQAQuestion,
    VQAQuestionFile,
    write_vqa_annotations,
    write_vqa_questions,
)
from vqa_ve.datasets import (
    EVAL_SPLITS,
    TRAIN_SPLITS,
    FeatureFiles,
    collate,
    evaluation_examples,
    split_path,
    vqa_annotations_path,
)
from vqa_ve.models import load_qa_model
from vqa_ve.training.evaluation import predict, score
from vqa_ve.training.trainer import QATrainConfig, QATrainer, load_qa_train_config

IMAGES = 6
GRID_SIDE, GRID_DIM, POOLED_DIM = 2, 8, 6
COLORS = ("red", "green", "blue")
#: A tiny model and a budget that overfits these files in a few seconds.
TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "dropout": 0.0}


def write_features(path: Path, image_ids: list[str]) -> None:
    """An ``image-grid`` file as ``clipvil features --images --grid`` writes it; the image
    named ``...{i}`` gets image ``i``'s random features (VQA's train and val names alike)."""
    with h5py.File(path, "w") as f:
        f.attrs.update(
            layout="image-grid",
            feature_dim=POOLED_DIM,
            grid_height=GRID_SIDE,
            grid_width=GRID_SIDE,
            grid_dim=GRID_DIM,
            model_name="random",
        )
        for image_id in image_ids:
            rng = np.random.default_rng(int(image_id[-1]))
            f[image_id] = rng.normal(size=POOLED_DIM).astype(np.float32)
            grid = rng.normal(size=(GRID_SIDE * GRID_SIDE, GRID_DIM))
            f[f"{image_id}.grid"] = grid.astype(np.float32)


def write_vqa(root: Path) -> list[str]:
    """Two questions per image whose answers depend on the image; train == val."""
    (root / "vqa").mkdir(parents=True, exist_ok=True)
    keys = []
    for split in (TRAIN_SPLITS["vqa"], EVAL_SPLITS["vqa"]):
        questions, annotations = [], []
        for image in range(IMAGES):
            keys.append(f"COCO_{split}_{image:012d}")
            asked = (("what color is it?", COLORS[image % 3]), ("how many?", str(image // 3)))
            for q, (text, answer) in enumerate(asked):
                qid = 10 * image + q
                questions.append(VQAQuestion(image, text, qid))
                answers = tuple(VQAAnswer(answer, "yes", i + 1) for i in range(10))
                annotations.append(VQAAnnotation(qid, image, text[:4], "other", answer, answers))
        header = {"info": {}, "data_type": "mscoco", "data_subtype": split, "license": {}}
        write_vqa_questions(
            split_path("vqa", root, split),
            VQAQuestionFile(**header, task_type="Open-Ended", questions=tuple(questions)),
        )
        write_vqa_annotations(
            vqa_annotations_path(root, split),
            VQAAnnotationFile(**header, annotations=tuple(annotations)),
        )
    return keys


def write_snli(root: Path) -> list[str]:
    (root / "snli_ve").mkdir(parents=True, exist_ok=True)
    examples = []
    for image in range(IMAGES):
        for k, color in enumerate(COLORS):
            label = LABELS[0] if color == COLORS[image % 3] else LABELS[2]
            pair = f"{image}#{k}"
            examples.append(
                SNLIVEExample(pair, str(1000 + image), f"a {color} thing", "", label, pair)
            )
    for split in (TRAIN_SPLITS["snli-ve"], EVAL_SPLITS["snli-ve"]):
        write_snli_ve(split_path("snli-ve", root, split), examples)
    return [str(1000 + image) for image in range(IMAGES)]


def write_vcr_files(root: Path) -> list[str]:
    (root / "vcr").mkdir(parents=True, exist_ok=True)
    words = ("running", "sleeping", "eating", "singing")
    items = []
    for image in range(IMAGES):
        items.append(
            VCRItem(
                annot_id=f"val-{image}",
                img_fn=f"movie/img{image}.jpg",
                metadata_fn=f"movie/img{image}.json",
                objects=("person",),
                question=("What", "is", (0,), "doing", "?"),
                answer_choices=tuple(((0,), "is", w, ".") for w in words),
                rationale_choices=tuple(("because", w, "shows") for w in reversed(words)),
                answer_label=image % 4,
                rationale_label=(image + 1) % 4,
            )
        )
    for split in (TRAIN_SPLITS["vcr"], EVAL_SPLITS["vcr"]):
        write_vcr(split_path("vcr", root, split), items)
    return [f"img{image}" for image in range(IMAGES)]


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data root, features file)`` holding all three tasks."""
    root = tmp_path_factory.mktemp("qa")
    keys = write_vqa(root) + write_snli(root) + write_vcr_files(root)
    features = root / "features.h5"
    write_features(features, keys)
    return root, features


def config(task: str, **overrides: object) -> QATrainConfig:
    settings = {"iterations": 60, "batch_size": 8, "learning_rate": 3e-3, "eval_every": 60}
    return load_qa_train_config(None, task=task, device="cpu", **{**settings, **TINY, **overrides})


@pytest.mark.parametrize(
    ("task", "metric"), [("vqa", "accuracy"), ("snli-ve", "accuracy"), ("vcr", "q2ar")]
)
def test_each_task_overfits_a_handful_of_examples(qa_data, tmp_path, task, metric) -> None:
    root, features = qa_data
    trainer = QATrainer(root, features, tmp_path, config(task, iterations=300, eval_every=300))
    before = score(trainer.eval_split, evaluate_predictions(trainer))
    best = trainer.train(progress=False)
    rows = [json.loads(json.dumps(r)) for r in _log_rows(tmp_path)]
    losses = [float(r["train/task_loss"]) for r in rows if r.get("train/task_loss")]
    assert losses[-1] < 0.6 * losses[0], losses
    assert best[f"{trainer.eval_split.split}/{metric}"] >= 90.0
    assert before[metric] < best[f"{trainer.eval_split.split}/{metric}"]


def evaluate_predictions(trainer: QATrainer) -> dict:
    return predict(
        trainer.model,
        trainer.eval_split,
        trainer.tokenizer,
        trainer.features,
        trainer.answers,
        8,
        "cpu",
    )


def _log_rows(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("task", ["vqa", "vcr"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(qa_data, tmp_path, task) -> None:
    root, features = qa_data
    settings = config(task, iterations=12, eval_every=6, dropout=0.1)
    whole = QATrainer(root, features, tmp_path / "whole", settings)
    whole.train(progress=False)
    QATrainer(root, features, tmp_path / "cut", settings).train(progress=False, stop_at=5)
    resumed = QATrainer(root, features, tmp_path / "cut", settings, resume=True)
    assert resumed.step == 5
    resumed.train(progress=False)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_checkpoint_loads_and_scores_like_the_run(qa_data, tmp_path) -> None:
    root, features = qa_data
    trainer = QATrainer(root, features, tmp_path, config("vqa", iterations=10, eval_every=10))
    best = trainer.train(progress=False)
    model, tokenizer, payload = load_qa_model(tmp_path / "latest.pt")
    assert payload["extra"]["task"] == "vqa" and tokenizer.vocab == trainer.tokenizer.vocab
    from vqa_ve.data.vqa import AnswerVocabulary

    answers = AnswerVocabulary(tuple(payload["extra"]["answers"]))
    predictions = predict(model, trainer.eval_split, tokenizer, trainer.features, answers, 4, "cpu")
    assert score(trainer.eval_split, predictions)["accuracy"] == best["val2014/accuracy"]


def test_fraction_keeps_a_seeded_subset(qa_data, tmp_path) -> None:
    root, features = qa_data
    half = QATrainer(root, features, tmp_path / "a", config("snli-ve", fraction=0.5))
    again = QATrainer(root, features, tmp_path / "b", config("snli-ve", fraction=0.5))
    assert len(half.train_examples) == IMAGES * len(COLORS) // 2
    assert half.train_examples == again.train_examples


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_qa.configure(parser)
    return train_qa.run(parser.parse_args(list(argv)))


def test_command_trains_with_a_shipped_recipe(qa_data, tmp_path, capsys) -> None:
    root, features = qa_data
    flags = ["--hidden-size", "16", "--num-layers", "1", "--device", "cpu", "--no-progress"]
    assert (
        run_command(
            "--task",
            "snli-ve",
            "--data",
            str(root),
            "--features",
            str(features),
            "--out",
            str(tmp_path),
            "--config",
            "qa-snli-ve",
            "--iterations",
            "3",
            "--eval-every",
            "3",
            *flags,
        )
        == 0
    )
    assert "dev/accuracy" in json.loads(capsys.readouterr().out)
    assert (tmp_path / "best.pt").is_file()


def test_bad_inputs_are_one_line_errors(qa_data, tmp_path) -> None:
    root, features = qa_data
    with pytest.raises(DataError, match="not found|cannot read|No such"):
        QATrainer(tmp_path, features, tmp_path / "run", config("vqa"))
    empty = tmp_path / "empty.h5"
    write_features(empty, ["1000"])
    with pytest.raises(DataError, match="no features for image") as err:
        QATrainer(root, empty, tmp_path / "run", config("snli-ve"))
    assert "\n" not in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"task": "vqa", "hidden_size": "big"}')
    with pytest.raises(DataError, match="hidden_size"):
        load_qa_train_config(bad)
    with pytest.raises(DataError, match="checkpoint file not found"):
        load_qa_model(tmp_path / "missing.pt")


def test_resuming_with_another_architecture_is_refused(qa_data, tmp_path) -> None:
    root, features = qa_data
    QATrainer(root, features, tmp_path, config("snli-ve", iterations=2)).train(progress=False)
    with pytest.raises(DataError, match="another model"):
        QATrainer(root, features, tmp_path, config("snli-ve", hidden_size=16), resume=True)
    with pytest.raises(DataError, match="other data") as err:
        QATrainer(root, features, tmp_path, config("snli-ve", fraction=0.5), resume=True)
    assert "fraction 1.0, this run 0.5" in str(err.value)


def run_eval(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    eval_qa.configure(parser)
    return eval_qa.run(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    ("task", "prediction_file"),
    [("vqa", "results.json"), ("snli-ve", "predictions.jsonl"), ("vcr", "leaderboard.csv")],
)
def test_eval_qa_writes_the_official_file_and_the_run_s_metrics(
    qa_data, tmp_path, task, prediction_file
) -> None:
    root, features = qa_data
    trainer = QATrainer(root, features, tmp_path / "run", config(task, iterations=4, eval_every=4))
    best = trainer.train(progress=False)
    out = tmp_path / "eval"
    flags = ["--data", str(root), "--features", str(features), "--out", str(out)]
    assert run_eval("--checkpoint", str(tmp_path / "run" / "best.pt"), *flags) == 0
    assert (out / prediction_file).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == EVAL_SPLITS[task]
    assert metrics[trainer.select_metric.split("/")[1]] == best[trainer.select_metric]
    if task == "vcr":
        rows = (out / prediction_file).read_text().splitlines()
        assert len(rows) == 1 + IMAGES and len(rows[0].split(",")) == 1 + 4 + 16


def test_eval_qa_refuses_another_task_and_other_features(qa_data, tmp_path) -> None:
    root, features = qa_data
    QATrainer(root, features, tmp_path / "run", config("snli-ve", iterations=1)).train(
        progress=False
    )
    checkpoint = str(tmp_path / "run" / "latest.pt")
    flags = ["--data", str(root), "--out", str(tmp_path / "eval")]
    with pytest.raises(DataError, match="is a snli-ve model, not vqa"):
        run_eval("--checkpoint", checkpoint, "--task", "vqa", "--features", str(features), *flags)
    pooled = tmp_path / "pooled.h5"
    with h5py.File(pooled, "w") as f:
        f.attrs.update(layout="image-pooled", feature_dim=POOLED_DIM)
    with pytest.raises(DataError, match="trained on"):
        run_eval("--checkpoint", checkpoint, "--features", str(pooled), *flags)
    assert not (tmp_path / "eval").exists()


def test_eval_qa_on_an_unlabelled_split_writes_predictions_only(qa_data, tmp_path) -> None:
    root, features = qa_data
    QATrainer(root, features, tmp_path / "run", config("vqa", iterations=1)).train(progress=False)
    data = tmp_path / "data"
    (data / "vqa").mkdir(parents=True)
    questions = tuple(VQAQuestion(image, "what color is it?", image) for image in range(IMAGES))
    header = {"info": {}, "data_type": "mscoco", "data_subtype": "test2015", "license": {}}
    write_vqa_questions(
        split_path("vqa", data, "test2015"),
        VQAQuestionFile(**header, task_type="Open-Ended", questions=questions),
    )
    test_features = tmp_path / "test.h5"
    write_features(test_features, [f"COCO_test2015_{image:012d}" for image in range(IMAGES)])
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(tmp_path / "run" / "latest.pt"), "--data", str(data)]
    argv += ["--features", str(test_features), "--split", "test2015", "--out", str(out)]
    assert run_eval(*argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["question_id"] for r in results] == list(range(IMAGES))
    assert not (out / "metrics.json").exists()


def test_features_of_several_folders_are_read_as_one(qa_data, tmp_path) -> None:
    root, _ = qa_data
    train_file, val_file = tmp_path / "train2014.h5", tmp_path / "val2014.h5"
    write_features(train_file, [f"COCO_train2014_{image:012d}" for image in range(IMAGES)])
    write_features(val_file, [f"COCO_val2014_{image:012d}" for image in range(IMAGES)])
    settings = config("vqa", iterations=2, eval_every=2)
    with pytest.raises(DataError, match="no features for image COCO_val2014_000000000000"):
        QATrainer(root, train_file, tmp_path / "one", settings)
    best = QATrainer(root, [train_file, val_file], tmp_path / "two", settings).train(progress=False)
    assert "val2014/accuracy" in best
    pooled = tmp_path / "pooled.h5"
    with h5py.File(pooled, "w") as f:
        f.attrs.update(layout="image-pooled", feature_dim=POOLED_DIM)
    with pytest.raises(DataError, match="differ from"):
        QATrainer(root, [train_file, pooled], tmp_path / "three", settings)


def test_the_synthetic_world_s_qa_files_train_through_features_images(
    tiny_synthetic_world, tmp_path
) -> None:
    """The whole path on the embedded world: ``features --images --grid`` per image folder
    (clipvil-tiny, random init), then train-qa on ``WORLD/qa`` and eval-qa on val_shift."""
    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    qa = tiny_synthetic_world / "qa"
    encoder = create_encoder("clipvil-tiny")
    files = []
    for folder in ("train2014", "val2014", "valshift2014"):
        files.append(tmp_path / f"{folder}.h5")
        options = {"grid": True, "progress": False, "workers": 0}
        extract_image_features(qa / "vqa" / folder, encoder, files[-1], **options)
    run = tmp_path / "run"
    best = QATrainer(qa, files, run, config("vqa", iterations=3, eval_every=3)).train(
        progress=False
    )
    assert 0.0 <= best["val2014/accuracy"] <= 100.0
    argv = ["--checkpoint", str(run / "best.pt"), "--data", str(qa), "--split", "valshift2014"]
    assert run_eval(*argv, "--features", *map(str, files), "--out", str(tmp_path / "eval")) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["split"] == "valshift2014"


def test_also_evaluate_logs_more_splits_but_selects_on_val(qa_data, tmp_path) -> None:
    """``also_evaluate`` (the shifted val of the CLIP-TD protocol) is scored at every
    evaluation beside val; best.pt still follows val."""
    root, features = qa_data
    shifted = split_path("snli-ve", root, "dev_shift")
    shifted.write_text(split_path("snli-ve", root, "dev").read_text())
    settings = config("snli-ve", iterations=6, eval_every=3, also_evaluate=("dev_shift",))
    trainer = QATrainer(root, features, tmp_path, settings)
    assert trainer.select_metric == "dev/accuracy"
    trainer.train(progress=False)
    rows = [r for r in _log_rows(tmp_path) if r.get("dev/accuracy")]
    assert len(rows) == 2
    assert all(r["dev_shift/accuracy"] == r["dev/accuracy"] for r in rows)  # same file
    missing = config("snli-ve", iterations=1, also_evaluate=("nowhere",))
    with pytest.raises(DataError, match="snli_ve_nowhere.jsonl"):
        QATrainer(root, features, tmp_path / "missing", missing)


def test_a_blind_model_ignores_the_image(qa_data, tmp_path) -> None:
    """The question-only baseline: predictions do not change with the image features."""
    root, features = qa_data
    trainer = QATrainer(root, features, tmp_path, config("vqa", iterations=20, blind=True))
    trainer.train(progress=False)
    model, tokenizer, _ = load_qa_model(tmp_path / "latest.pt")
    assert model.config.blind
    examples = evaluation_examples(trainer.eval_split)[:4]
    batch = collate(examples, tokenizer, trainer.features, model.config.max_text_length)
    noise = dataclasses.replace(batch, image=torch.randn_like(batch.image))
    with torch.no_grad():
        assert torch.equal(model(batch), model(noise))
        model.config = dataclasses.replace(model.config, blind=False)
        assert not torch.equal(model(batch), model(noise))


def test_eval_qa_refuses_features_of_another_encoder(qa_data, tmp_path, capsys) -> None:
    """The checkpoint records its features' encoder; eval-qa refuses another one of the
    same shape unless --allow-other-features, and several files must share one encoder."""
    root, features = qa_data
    trained = tmp_path / "trained.h5"
    trained.write_bytes(features.read_bytes())
    with h5py.File(trained, "a") as f:
        f.attrs.update(encoder_kind="clip", pretrained_sha256="a" * 64, image_size=64)
    QATrainer(root, trained, tmp_path / "run", config("snli-ve", iterations=1)).train(
        progress=False
    )
    _, _, payload = load_qa_model(tmp_path / "run" / "latest.pt")
    assert payload["extra"]["feature_provenance"]["encoder"]["weights"] == "sha256:" + "a" * 64
    other = tmp_path / "other.h5"
    other.write_bytes(trained.read_bytes())
    with h5py.File(other, "a") as f:
        f.attrs.update(encoder_kind="supervised", pretrained_sha256="b" * 64)
    argv = ["--checkpoint", str(tmp_path / "run" / "latest.pt"), "--data", str(root)]
    with pytest.raises(DataError, match="another encoder.*encoder_kind supervised vs clip"):
        run_eval(*argv, "--features", str(other), "--out", str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()
    capsys.readouterr()
    assert (
        run_eval(
            *argv,
            "--features",
            str(other),
            "--out",
            str(tmp_path / "allowed"),
            "--allow-other-features",
        )
        == 0
    )
    assert "warning:" in capsys.readouterr().err
    assert run_eval(*argv, "--features", str(trained), "--out", str(tmp_path / "same")) == 0
    with pytest.raises(DataError, match="made by another encoder than"):
        FeatureFiles([trained, other])
