"""Train the QA fusion model (``clipvil train-qa``) on VQA v2, SNLI-VE or VCR.

A thin :class:`~vln_agent.training.Trainer`: batches of the training split (a seeded
``fraction`` of it for low-shot runs), the head's ``task_loss`` (AdamW), and evaluation on
the validation split with the task's official metric (VQA accuracy, SNLI-VE accuracy, VCR
Q->A / QA->R / Q->AR); ``best.pt`` is chosen by VQA / SNLI-VE accuracy or VCR Q->AR.
With ``init`` the model starts from a ``clipvil pretrain-vl`` checkpoint
(:mod:`vqa_ve.pretrain.transfer`: its architecture, vocabulary and weights, and its trained
image encoder when it has one) instead of a fresh initialisation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from envs.errors import DataError
from envs.tokenizer import Tokenizer
from vln_agent.extract_images import image_grid_dims
from vln_agent.provenance import PROVENANCE_KEY
from vln_agent.training.distributed import DEVICES, DistributedContext
from vln_agent.training.settings import load_settings, recipe_path
from vln_agent.training.trainer import Trainer
from vqa_ve.data.vqa import VQA_ANSWER_VOCABULARY_SIZE, AnswerVocabulary, build_answer_vocabulary
from vqa_ve.datasets import (
    EVAL_SPLITS,
    TRAIN_SPLITS,
    EpochSampler,
    FeatureFiles,
    QASplit,
    collate,
    evaluation_examples,
    image_provenance,
    image_shape,
    load_split,
    split_texts,
    subset,
    training_examples,
)
from vqa_ve.distill import DistillConfig, Distiller, Teacher
from vqa_ve.encoding import (
    ENCODER_GROUP,
    ENCODER_PAYLOAD_KEY,
    GRID_TOKENS,
    IMAGE_TOKENS,
    EncodedQAModel,
    ImageFiles,
    build_image_encoder,
    check_inputs,
    encoder_from_record,
    encoder_record,
    image_provenance_of,
    parameter_groups,
    token_shape,
)
from vqa_ve.models.fusion import GRID_POSITIONS, QA_KIND, TASKS, QAFusionModel, QAModelConfig
from vqa_ve.pretrain.transfer import (
    architecture,
    check_pretrained_images,
    describe,
    extended_tokenizer,
    initialise_from_pretrained,
    load_pretrained,
)
from vqa_ve.training.evaluation import PERCENT, predict, score

#: Settings that choose the training examples: a resumed run must keep them.
DATA_SETTINGS = ("task", "fraction", "fraction_seed", "max_answers", "min_word_count")
#: The shipped recipes (``--config NAME`` reads ``NAME.json`` here).
QA_RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class QATrainConfig:
    """Settings of a QA training run (small defaults: minutes on 2 CPU cores)."""

    #: The task: ``vqa``, ``snli-ve`` or ``vcr`` (its head, data folder and metric).
    task: str = field(default="vqa", metadata={"choices": TASKS})
    #: Fraction of the training split kept (seeded subset; the low-shot protocol).
    fraction: float = 1.0
    #: Seed of that subset (kept apart from ``seed``: a seed study keeps the same subset).
    fraction_seed: int = 0
    #: Optimizer steps.
    iterations: int = 300
    #: Global batch size (split across processes under torchrun).
    batch_size: int = 32
    #: AdamW learning rate (a resumed run takes this one) and weight decay.
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    #: Gradients are clipped to this global norm.
    grad_clip: float = 1.0
    #: VQA: answers kept (the most frequent of the kept training annotations).
    max_answers: int = VQA_ANSWER_VOCABULARY_SIZE
    #: Words seen fewer times in the training text become <UNK>.
    min_word_count: int = 1
    #: Evaluate (and save) every this many iterations.
    eval_every: int = 100
    #: Evaluate on the first this many questions of the validation split (0: all).
    eval_limit: int = 0
    #: Further splits evaluated beside the validation split and logged (never used to
    #: choose best.pt), e.g. the domain-shifted val: ``valshift2014`` / ``dev_shift`` /
    #: ``val_shift`` of the embedded data.
    also_evaluate: tuple[str, ...] = ()
    #: Log the training loss every this many iterations.
    log_every: int = 10
    #: Random seed (initialisation, batches, dropout).
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = field(default="auto", metadata={"choices": DEVICES})
    #: Encode the images on the fly (from the data root's image files) instead of reading
    #: ``--features``: the encoder's weights, a clipvil checkpoint, an open_clip weight file
    #: or pretrained tag, or ``random`` (a random init); empty: the stored features.
    image_encoder: str = ""
    #: Its open_clip model name (default: the one a clipvil checkpoint records).
    encoder_model: str = ""
    #: The image tokens it gives: its ``grid`` cells (as ``features --grid``) or ``pooled``.
    image_tokens: str = field(default=GRID_TOKENS, metadata={"choices": IMAGE_TOKENS})
    #: Fine-tune the encoder end to end (default: frozen, no gradients, eval mode).
    finetune_encoder: bool = False
    #: AdamW learning rate of the fine-tuned encoder.
    encoder_learning_rate: float = 1e-5
    #: Keep the preprocessed images in memory (each decoded once; 3*H*W floats per image).
    cache_images: bool = True
    #: The fusion model's architecture (vocabulary and feature sizes come from the data).
    model: QAModelConfig = QAModelConfig()
    #: Start from a pretrained checkpoint (``clipvil pretrain-vl``'s ``best.pt``): its
    #: transformer, embeddings and vocabulary (task words appended), and its trained image
    #: encoder when it has one (:mod:`vqa_ve.pretrain.transfer`); empty: a fresh model.
    init: str = ""
    #: CLIP-TD distillation during training (none by default; :mod:`vqa_ve.distill`).
    distill: DistillConfig = DistillConfig()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}, expected one of {TASKS}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction {self.fraction} must be in (0, 1]")
        if self.eval_limit < 0 or self.max_answers < 1:
            raise ValueError("eval_limit must be >= 0 and max_answers >= 1")
        if self.finetune_encoder and not (self.image_encoder or self.init):
            raise ValueError("finetune_encoder needs an image_encoder (images encoded on the fly)")
        if self.image_tokens not in IMAGE_TOKENS:
            raise ValueError(f"image_tokens {self.image_tokens!r}, expected one of {IMAGE_TOKENS}")
        if self.image_encoder and self.distill.enabled:
            raise ValueError("distill reads stored features: it does not run with image_encoder")
        if self.model.grid_sample and self.distill.enabled:
            raise ValueError("distill selects among all image tokens: it needs grid_sample 0")


def qa_recipe_path(name_or_path: str | os.PathLike[str] | None) -> Path | None:
    """A ``--config`` value as a file: an existing path, or a recipe of vqa_ve/configs."""
    return recipe_path(name_or_path, QA_RECIPE_DIR)


def load_qa_train_config(path: str | os.PathLike[str] | None, **overrides: Any) -> QATrainConfig:
    """Settings from a JSON recipe, then ``overrides`` (flat: architecture fields go to
    ``model``); unknown keys and wrong types are one-line errors."""
    return load_settings(QATrainConfig, path, "QA training", **overrides)


def limited(split: QASplit, limit: int) -> QASplit:
    """The first ``limit`` records of ``split`` (all when 0)."""
    return dataclasses.replace(split, records=split.records[:limit]) if limit else split


class QATrainer(Trainer):
    """One QA fusion model trained on one task."""

    kind = QA_KIND

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        config: QATrainConfig,
        context: DistributedContext | None = None,
        resume: bool = False,
    ) -> None:
        """``features``: one image feature file, or several read as one (one per folder);
        none when ``config.image_encoder`` encodes the images on the fly."""
        super().__init__(out_dir, config, context)
        paths = [features] if isinstance(features, str | os.PathLike) else list(features)
        self.features_paths = [Path(path) for path in paths]
        task = config.task
        self.features: FeatureFiles | ImageFiles
        self.image_encoder = None
        self.pretrained = load_pretrained(config.init) if config.init else None
        if self.pretrained is not None and ENCODER_PAYLOAD_KEY in self.pretrained:
            if self.features_paths or config.image_encoder:
                raise DataError(
                    config.init,
                    "holds a trained image encoder, which encodes the images: drop --features "
                    "and --image-encoder",
                )
            self.image_encoder = encoder_from_record(self.pretrained[ENCODER_PAYLOAD_KEY])
            self.image_encoder = self.image_encoder.to(self.device)
            self.features = ImageFiles(data_dir, task, self.image_encoder, config.cache_images)
        elif config.finetune_encoder and not config.image_encoder:
            raise DataError(config.init, "has no image encoder to fine-tune (--finetune-encoder)")
        elif config.image_encoder:
            if self.features_paths:
                raise DataError(
                    self.features_paths[0], "--features and --image-encoder exclude each other"
                )
            self.image_encoder = build_image_encoder(
                config.image_encoder, config.encoder_model, self.device
            )
            self.features = ImageFiles(data_dir, task, self.image_encoder, config.cache_images)
        elif not self.features_paths:
            raise DataError("--features", "required unless --image-encoder encodes the images")
        else:
            self.features = FeatureFiles(self.features_paths)
        train = load_split(task, data_dir, TRAIN_SPLITS[task])
        train = dataclasses.replace(
            train, records=subset(train.records, config.fraction, config.fraction_seed)
        )
        self.answers: AnswerVocabulary | None = None
        if task == "vqa":
            annotations = [record.annotation for record in train.records]
            self.answers = build_answer_vocabulary(annotations, config.max_answers)
        if self.pretrained is not None:
            self.tokenizer = extended_tokenizer(
                self.pretrained["vocabulary"], split_texts(train), config.min_word_count
            )
        else:
            self.tokenizer = Tokenizer.from_texts(split_texts(train), config.min_word_count)
        self.train_examples = training_examples(train, self.answers)
        check_inputs(self.features, self.train_examples, train.path)
        self.eval_split = limited(load_split(task, data_dir, EVAL_SPLITS[task]), config.eval_limit)
        self.extra_splits = [
            limited(load_split(task, data_dir, name), config.eval_limit)
            for name in config.also_evaluate
            if name != self.eval_split.split
        ]
        for split in (self.eval_split, *self.extra_splits):
            check_inputs(self.features, evaluation_examples(split), split.path)
        if self.image_encoder is not None:
            cells, channels = token_shape(self.image_encoder, config.image_tokens)
            rows = image_grid_dims(self.image_encoder)[0] if cells > 1 else 1
        else:
            cells, channels = image_shape(self.features)
            rows = int(self.features.attrs["grid_height"]) if self.features.grid_shape else 1
        inherited: dict[str, Any] = {}
        if self.pretrained is not None:
            inherited = architecture(self.pretrained)
        self.model_config = dataclasses.replace(
            config.model,
            **inherited,
            task=task,
            vocab_size=len(self.tokenizer),
            num_answers=len(self.answers) if self.answers else 0,
            feature_dim=channels,
            num_regions=cells,
        )
        if self.model_config.image_positions == GRID_POSITIONS:
            self.model_config = dataclasses.replace(self.model_config, grid_height=rows)
        model = QAFusionModel(self.model_config).to(self.device)
        params: Any = model.parameters()
        if self.image_encoder is not None:
            model = EncodedQAModel(
                model, self.image_encoder, config.image_tokens, config.finetune_encoder
            )
            params = parameter_groups(model, config.encoder_learning_rate)
            source = config.image_encoder or config.init
            self.encoder_record = encoder_record(model, source, config.seed)
        self.init_record: dict[str, Any] = {}
        if self.pretrained is not None:
            if ENCODER_PAYLOAD_KEY not in self.pretrained:  # else its own encoder reads them
                check_pretrained_images(self.pretrained, self.image_provenance(), config.init)
            loaded = initialise_from_pretrained(model, self.pretrained, config.init)
            self.init_record = describe(config.init, self.pretrained, loaded)
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.distiller = self._distiller()
        if self.distiller is not None:
            optimizer.add_param_group({"params": list(self.distiller.parameters())})
        self.attach(model, optimizer, auxiliary=self.distiller)
        self.local_slice(config.batch_size)  # validates divisibility
        self.sampler = EpochSampler(len(self.train_examples), config.batch_size, config.seed)
        if resume:
            self.resume()

    def _distiller(self) -> Distiller | None:
        """The distillation head of ``--distill naive|clip-td`` (None without), its teacher
        features checked against every training image."""
        settings = self.config.distill
        if not settings.enabled:
            return None
        teacher = Teacher.from_config(settings, self.config.task, self.answers)
        teacher.features.require(example.image_id for example in self.train_examples)
        teacher.prepare(self.train_examples)
        attrs = self.features.attrs
        grid = (int(attrs["grid_height"]), int(attrs["grid_width"]))
        if self.features.grid_shape is None:
            grid = (1, 1)  # pooled features: one image token
        width = self.model_config.hidden_size
        return Distiller(settings, teacher, width, grid).to(self.device)

    @property
    def select_metric(self) -> str:
        name = "q2ar" if self.config.task == "vcr" else "accuracy"
        return f"{self.eval_split.split}/{name}"

    def train_step(self) -> dict[str, float]:
        self.model.train()
        indices = self.sampler.next_batch()[self.local_slice(self.config.batch_size)]
        examples = [self.train_examples[i] for i in indices]
        batch = collate(
            examples,
            self.tokenizer,
            self.features,
            self.model_config.max_text_length,
            self.model_config.num_answers,
        ).to(self.device)
        distill_stats: dict[str, float] = {}
        if self.distiller is not None:
            parts, distill_stats, logits = self.distiller.losses(self.model, batch, examples)
        else:
            parts, logits = self.model.losses(batch)
        self.optimize(parts)
        best = logits.detach().argmax(dim=1)  # [B]
        if self.config.task == "vqa":
            credit = batch.target.gather(1, best[:, None]).squeeze(1)  # [B]: soft score
        else:
            credit = (best == batch.target).float()  # [B]
        stats = {name: float(value.detach()) for name, value in parts.items()}
        stats["accuracy"] = PERCENT * float(credit.mean())
        return {**stats, **distill_stats}

    def evaluate(self) -> dict[str, dict[str, float]]:
        results = {}
        for split in (self.eval_split, *self.extra_splits):
            predictions = predict(
                self.model,
                split,
                self.tokenizer,
                self.features,
                self.answers,
                self.config.batch_size,
                self.device,
            )
            results[split.split] = score(split, predictions)
        return results

    def image_provenance(self) -> dict[str, Any]:
        """What the checkpoint records of the run's image tokens."""
        if self.image_encoder is None:
            return image_provenance(self.features)
        return image_provenance_of(self.encoder_record)

    def model_payload(self) -> dict[str, Any]:
        attrs = self.features.attrs
        provenance = self.image_provenance()
        payload = {
            "model_config": self.model_config.to_dict(),
            "state_dict": self.model.state_dict(),
            "vocabulary": list(self.tokenizer.vocab),
            "extra": {
                "task": self.config.task,
                "answers": list(self.answers.answers) if self.answers else [],
                "features": [str(path) for path in self.features_paths],
                "feature_model": str(attrs.get("model_name", "")),
                "feature_layout": str(self.features.layout),
                PROVENANCE_KEY: provenance,
                "distill": dataclasses.asdict(self.config.distill),
                "init": self.init_record,
            },
        }
        if self.image_encoder is not None:
            payload[ENCODER_PAYLOAD_KEY] = self.encoder_record
        return payload

    def run_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_run_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def resume(self, path: str | os.PathLike[str] | None = None) -> None:
        super().resume(path)
        if self.config.finetune_encoder:  # the spine gave every group the run's rate
            self.optimizer.param_groups[ENCODER_GROUP]["lr"] = self.config.encoder_learning_rate

    def check_resumable(self, payload: dict[str, Any], path: Path) -> None:
        trained = payload.get(ENCODER_PAYLOAD_KEY)
        ours = self.encoder_record if self.image_encoder is not None else None
        settings = ("model_name", "tokens", "finetuned")
        if (trained is None) != (ours is None) or any(
            trained[key] != ours[key] for key in settings if trained and ours
        ):
            shown = "stored features"
            if trained is not None:
                shown = "image encoder " + ", ".join(f"{k} {trained[k]}" for k in settings)
            raise DataError(path, f"was trained with another image input: {shown}")
        if payload["model_config"] != self.model_config.to_dict():
            raise DataError(path, "was trained with another model, task, vocabulary or features")
        trained = payload.get("train_config") or {}
        for name in DATA_SETTINGS:
            if trained.get(name) != getattr(self.config, name):
                raise DataError(
                    path,
                    f"was trained on other data: {name} {trained.get(name)!r}, "
                    f"this run {getattr(self.config, name)!r}",
                )
        if payload.get("vocabulary") != list(self.tokenizer.vocab):
            raise DataError(path, "was trained on another word vocabulary")
        if trained.get("init", "") != self.config.init:
            raise DataError(path, f"was started from another checkpoint: {trained.get('init')!r}")
        distilled = trained.get("distill") or dataclasses.asdict(DistillConfig())
        if distilled != dataclasses.asdict(self.config.distill):
            raise DataError(path, "was trained with other distillation settings (--distill ...)")
