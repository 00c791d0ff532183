"""Pretrain the single-stream transformer on image-caption pairs (+ VQA): ``pretrain-vl``.

A :class:`~vln_agent.training.Trainer` like the QA trainer: each step draws a global batch
of captions (:class:`~vqa_ve.datasets.EpochSampler` over every caption of the training
files), masks and mismatches it (:mod:`.objectives`, from a generator saved with the run)
and sums ``mlm_loss`` and ``itm_loss``; from ``qa_from`` on, a VQA batch of the same size
adds ``qa_loss`` (the second stage). Every process builds the same global batch and trains
on its slice, so torchrun matches one process on the same global batch.

Evaluation: MLM and ITM accuracy (percent) on the validation captions with masks and pairs
drawn from a fixed seed (the same every evaluation), the MLM accuracy again with the image
tokens zeroed (``mlm_accuracy_blind``: what the words alone give), and, with
``qa_eval_split``, the official VQA accuracy; ``best.pt`` is chosen by the mean of the
objectives' validation accuracies (MLM, ITM, and VQA with a QA stage), so that it comes from
the second stage.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from envs.errors import DataError
from vln_agent.extract_images import image_grid_dims
from vln_agent.provenance import PROVENANCE_KEY
from vln_agent.training.distributed import DistributedContext
from vln_agent.training.optimizers import OptimizerChain
from vln_agent.training.settings import load_settings, recipe_path
from vln_agent.training.trainer import Trainer
from vqa_ve.data.captions import Caption, load_coco_captions
from vqa_ve.data.vqa import AnswerVocabulary, build_answer_vocabulary
from vqa_ve.datasets import (
    EpochSampler,
    FeatureFiles,
    QAExample,
    collate,
    evaluation_examples,
    image_provenance,
    image_shape,
    load_split,
    split_texts,
    training_examples,
)
from vqa_ve.encoding import (
    ENCODER_GROUP,
    ENCODER_PAYLOAD_KEY,
    ImageFiles,
    build_image_encoder,
    check_inputs,
    encoder_record,
    image_provenance_of,
)
from vqa_ve.pretrain.config import PretrainConfig
from vqa_ve.pretrain.data import caption_pool, collate_captions, pretraining_tokenizer
from vqa_ve.pretrain.model import PRETRAIN_KIND, VLPretrainModel
from vqa_ve.pretrain.objectives import IGNORE_INDEX
from vqa_ve.training.evaluation import PERCENT, predict, score
from vqa_ve.training.trainer import QA_RECIPE_DIR, limited

#: Settings that choose the training data and vocabulary: a resumed run must keep them.
DATA_SETTINGS = ("train_captions", "qa_split", "max_answers", "min_word_count")
#: Seed of the masks and pairs of every evaluation (the same each time).
EVAL_SEED = 0
#: The evaluation entry of the validation captions, and of the mean accuracy over the
#: objectives (MLM, ITM, VQA) that chooses best.pt.
CAPTIONS_EVAL = "val_captions"
SUMMARY_EVAL = "pretraining"


def load_pretrain_config(path: str | os.PathLike[str] | None, **overrides: Any) -> PretrainConfig:
    """Settings from a JSON recipe (a file, or a name in vqa_ve/configs), then ``overrides``."""
    return load_settings(
        PretrainConfig, recipe_path(path, QA_RECIPE_DIR), "pretraining", **overrides
    )


def caption_file(data_dir: Path, name: str) -> Path:
    """A caption setting as a file: absolute, or relative to the data root."""
    path = Path(name)
    return path if path.is_absolute() else data_dir / path


def caption_examples(captions: Sequence[Caption]) -> list[QAExample]:
    """The captions as examples (for the one-line missing-image checks)."""
    return [QAExample(f"caption {c.caption_id}", c.image_id, ((c.text, ""),)) for c in captions]


class VLPretrainer(Trainer):
    """MLM + ITM (+ QA) pretraining of the fusion transformer."""

    kind = PRETRAIN_KIND

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: Sequence[str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        config: PretrainConfig,
        context: DistributedContext | None = None,
        resume: bool = False,
    ) -> None:
        super().__init__(out_dir, config, context)
        data_dir = Path(data_dir)
        self.features_paths = [Path(path) for path in features]
        self.image_encoder = None
        self.features: FeatureFiles | ImageFiles
        if config.image_encoder:
            if self.features_paths:
                raise DataError(
                    self.features_paths[0], "--features and --image-encoder exclude each other"
                )
            self.image_encoder = build_image_encoder(
                config.image_encoder, config.encoder_model, self.device
            )
            self.features = ImageFiles(data_dir, "vqa", self.image_encoder, config.cache_images)
        elif not self.features_paths:
            raise DataError("--features", "required unless --image-encoder encodes the images")
        else:
            self.features = FeatureFiles(self.features_paths)
        self.caption_paths = [caption_file(data_dir, name) for name in config.train_captions]
        self.captions = [c for p in self.caption_paths for c in load_coco_captions(p).captions]
        if not self.captions:
            raise DataError(self.caption_paths[0], "holds no captions")
        check_inputs(self.features, caption_examples(self.captions), self.caption_paths[0])
        self.val_captions: list[Caption] = []
        if config.val_captions:
            path = caption_file(data_dir, config.val_captions)
            self.val_captions = list(load_coco_captions(path).captions)
            if config.eval_limit:
                self.val_captions = self.val_captions[: config.eval_limit]
            check_inputs(self.features, caption_examples(self.val_captions), path)
        self.pool = caption_pool(self.captions)
        texts = [caption.text for caption in self.captions]
        self.answers: AnswerVocabulary | None = None
        self.qa_examples: list[QAExample] = []
        self.qa_eval = None
        if config.qa_split:
            split = load_split("vqa", data_dir, config.qa_split)
            self.answers = build_answer_vocabulary(
                [record.annotation for record in split.records], config.max_answers
            )
            self.qa_examples = training_examples(split, self.answers)
            check_inputs(self.features, self.qa_examples, split.path)
            texts += split_texts(split)
            if config.qa_eval_split:
                self.qa_eval = limited(
                    load_split("vqa", data_dir, config.qa_eval_split), config.eval_limit
                )
                check_inputs(self.features, evaluation_examples(self.qa_eval), self.qa_eval.path)
        self.tokenizer = pretraining_tokenizer(texts, config.min_word_count)
        if self.image_encoder is not None:
            rows, columns, channels = image_grid_dims(self.image_encoder)
            cells = rows * columns
        else:
            cells, channels = image_shape(self.features)
            rows = int(self.features.attrs["grid_height"]) if self.features.grid_shape else 1
        self.model_config = dataclasses.replace(
            config.model,
            task="vqa",
            vocab_size=len(self.tokenizer),
            num_answers=len(self.answers) if self.answers else 1,
            feature_dim=channels,
            num_regions=cells,
            grid_height=rows,
        )
        model = VLPretrainModel(self.model_config, self.image_encoder, config.finetune_encoder)
        model = model.to(self.device)
        main = [p for name, p in model.named_parameters() if not name.startswith("image_encoder.")]
        optimizer: Any = torch.optim.AdamW(
            main, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        if model.finetune:
            encoder = list(model.image_encoder.parameters())
            if config.encoder_optimizer == "sgd":
                sgd = torch.optim.SGD(
                    encoder, lr=config.encoder_learning_rate, momentum=config.encoder_momentum
                )
                optimizer = OptimizerChain([optimizer, sgd])
            else:
                optimizer.add_param_group({"params": encoder, "lr": config.encoder_learning_rate})
        if self.image_encoder is not None:
            self.encoder_record = encoder_record(model, config.image_encoder, config.seed)
        self.attach(model, optimizer)
        self.local_slice(config.batch_size)  # validates divisibility
        self.sampler = EpochSampler(len(self.captions), config.batch_size, config.seed)
        self.qa_sampler = None
        if self.qa_examples:
            self.qa_sampler = EpochSampler(len(self.qa_examples), config.batch_size, config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        if resume:
            self.resume()

    @property
    def select_metric(self) -> str | None:
        """The mean validation accuracy of the objectives evaluated (a stage-1 checkpoint,
        whose VQA head is untrained, does not win over a stage-2 one by its MLM alone)."""
        if not self.val_captions and self.qa_eval is None:
            return None
        return f"{SUMMARY_EVAL}/mean_accuracy"

    @property
    def qa_stage(self) -> bool:
        """Whether this step trains the QA objective too (stage 2)."""
        return self.qa_sampler is not None and self.step >= self.config.qa_from

    def train_step(self) -> dict[str, float]:
        config = self.config
        self.model.train()
        rows = self.local_slice(config.batch_size)
        batch = collate_captions(
            [self.captions[i] for i in self.sampler.next_batch()],
            self.pool,
            self.tokenizer,
            self.features,
            self.model_config.max_text_length,
            config.mask_probability,
            config.mismatch,
            self.generator,
        )
        # The global batch's masked words per process (the MLM loss's divisor), then this
        # process's slice of the global batch.
        masked = int((batch.mlm_labels != IGNORE_INDEX).sum()) / self.context.world_size
        sliced = [getattr(batch, f.name)[rows] for f in dataclasses.fields(batch)]
        batch = type(batch)(*sliced).to(self.device)
        parts, stats = self.model.caption_losses(batch, max(masked, 1.0))
        weighted = {
            "mlm_loss": config.mlm_weight * parts["mlm_loss"],
            "itm_loss": config.itm_weight * parts["itm_loss"],
        }
        if self.qa_stage:
            indices = self.qa_sampler.next_batch()[rows]
            qa_batch = collate(
                [self.qa_examples[i] for i in indices],
                self.tokenizer,
                self.features,
                self.model_config.max_text_length,
                self.model_config.num_answers,
            ).to(self.device)
            qa_parts, _ = self.model.qa_losses(qa_batch)
            parts.update(qa_parts)
            weighted["qa_loss"] = config.qa_weight * qa_parts["qa_loss"]
        self.optimize(weighted)
        return {**{name: float(value.detach()) for name, value in parts.items()}, **stats}

    @torch.no_grad()
    def evaluate_captions(self, blind: bool = False) -> dict[str, float]:
        """MLM / ITM accuracy and losses on the validation captions (fixed draws); ``blind``
        zeroes the image tokens (how much of the MLM accuracy the text alone gives)."""
        self.model.eval()
        generator = torch.Generator().manual_seed(EVAL_SEED)
        size = self.config.batch_size
        sums = {"mlm_hits": 0.0, "masked": 0, "itm_hits": 0.0, "pairs": 0, "itm_loss": 0.0}
        sums["mlm_loss"] = 0.0
        pool = caption_pool(self.val_captions)
        for start in range(0, len(self.val_captions), size):
            chunk = self.val_captions[start : start + size]
            batch = collate_captions(
                chunk,
                pool,
                self.tokenizer,
                self.features,
                self.model_config.max_text_length,
                self.config.mask_probability,
                self.config.mismatch,
                generator,
            ).to(self.device)
            parts, stats = self.model.caption_losses(batch, blind=blind)
            masked = stats["masked_words"]
            if masked:
                sums["mlm_hits"] += stats["mlm_accuracy"] * masked / PERCENT
                sums["mlm_loss"] += float(parts["mlm_loss"]) * masked
                sums["masked"] += masked
            sums["itm_hits"] += stats["itm_accuracy"] * len(chunk) / PERCENT
            sums["itm_loss"] += float(parts["itm_loss"]) * len(chunk)
            sums["pairs"] += len(chunk)
        masked, pairs = max(1, sums["masked"]), max(1, sums["pairs"])
        return {
            "mlm_accuracy": PERCENT * sums["mlm_hits"] / masked,
            "mlm_loss": sums["mlm_loss"] / masked,
            "itm_accuracy": PERCENT * sums["itm_hits"] / pairs,
            "itm_loss": sums["itm_loss"] / pairs,
        }

    def evaluate(self) -> dict[str, dict[str, float]]:
        results: dict[str, dict[str, float]] = {}
        if self.val_captions:
            results[CAPTIONS_EVAL] = self.evaluate_captions()
            blind = self.evaluate_captions(blind=True)
            results[CAPTIONS_EVAL]["mlm_accuracy_blind"] = blind["mlm_accuracy"]
        if self.qa_eval is not None:
            predictions = predict(
                self.model,
                self.qa_eval,
                self.tokenizer,
                self.features,
                self.answers,
                self.config.batch_size,
                self.device,
            )
            results[self.qa_eval.split] = score(self.qa_eval, predictions)
        accuracies = []
        if CAPTIONS_EVAL in results:
            accuracies += [results[CAPTIONS_EVAL][k] for k in ("mlm_accuracy", "itm_accuracy")]
        if self.qa_eval is not None:
            accuracies.append(results[self.qa_eval.split]["accuracy"])
        if accuracies:
            results[SUMMARY_EVAL] = {"mean_accuracy": sum(accuracies) / len(accuracies)}
        return results

    def model_payload(self) -> dict[str, Any]:
        if self.image_encoder is None:
            provenance = image_provenance(self.features)
        else:
            provenance = image_provenance_of(self.encoder_record)
        payload = {
            "model_config": self.model_config.to_dict(),
            "state_dict": self.model.state_dict(),
            "vocabulary": list(self.tokenizer.vocab),
            "extra": {
                "answers": list(self.answers.answers) if self.answers else [],
                "captions": [str(path) for path in self.caption_paths],
                "features": [str(path) for path in self.features_paths],
                PROVENANCE_KEY: provenance,
            },
        }
        if self.image_encoder is not None:
            payload[ENCODER_PAYLOAD_KEY] = self.encoder_record
        return payload

    def run_state(self) -> dict[str, Any]:
        state = {"sampler": self.sampler.state_dict(), "masks": self.generator.get_state()}
        if self.qa_sampler is not None:
            state["qa_sampler"] = self.qa_sampler.state_dict()
        return state

    def load_run_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["masks"])
        if self.qa_sampler is not None:
            self.qa_sampler.load_state_dict(state["qa_sampler"])

    def resume(self, path: str | os.PathLike[str] | None = None) -> None:
        super().resume(path)
        if self.model.finetune:  # the spine gave every group the run's rate
            self.optimizer.param_groups[ENCODER_GROUP]["lr"] = self.config.encoder_learning_rate

    def check_resumable(self, payload: dict[str, Any], path: Path) -> None:
        if payload["model_config"] != self.model_config.to_dict():
            raise DataError(path, "was pretrained with another model, vocabulary or features")
        if (ENCODER_PAYLOAD_KEY in payload) != (self.image_encoder is not None):
            raise DataError(path, "was pretrained with another image input (features vs encoder)")
        trained = payload.get("train_config") or {}
        for name in DATA_SETTINGS:
            ours = getattr(self.config, name)
            theirs = trained.get(name)
            if (list(theirs) if isinstance(theirs, list | tuple) else theirs) != (
                list(ours) if isinstance(ours, tuple) else ours
            ):
                raise DataError(
                    path, f"was pretrained on other data: {name} {theirs!r}, this run {ours!r}"
                )
        if payload.get("vocabulary") != list(self.tokenizer.vocab):
            raise DataError(path, "was pretrained with another word vocabulary")
