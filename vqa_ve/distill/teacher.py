"""The teacher's side of CLIP-TD: its image features from a file, its text embeddings cached.

Image side, precomputed: ``clipvil features --images DIR --grid`` run with the teacher's
weights writes, per image id, the pooled embedding ``[E]`` and the grid ``[h*w, C]``
(:mod:`vln_agent.extract_images`), so training never runs the teacher's image tower.
:class:`TeacherImageFeatures` reads a batch of them; the grid cells are stored before the
tower's output projection, and :func:`project_grid` maps them into the joint space ``E``
(the same map as ``CLIPEncoder.encode_image_grid(project=True)``: ViT ``ln_post`` tokens
``@ proj``, ResNet ``layer4`` cells through the attention pool's value and output
projections), which needs the teacher's projection weights only.

Text side: :func:`embed_texts` embeds texts in batches (normalised ``[N, E]``) and
:class:`TextEmbeddingCache` keeps them by text, so a candidate text is embedded once per
run.

Texts (:func:`instance_text`, :func:`candidate_texts`, :func:`teacher_target`), our
choices, measured with the shipped ``clipvil-small-synthetic.pt`` as teacher on the tiny
synthetic world's training split (zero-shot accuracy of the teacher's top candidate):

* relevance of a grid cell is scored against the VQA question, the SNLI-VE hypothesis, or
  VCR's context followed by the right choice (the context alone when unlabelled);
* VCR candidates: the four ``context choice`` texts (49 % on 90 Q->A / QA->R examples,
  chance 25 %);
* SNLI-VE candidates: **two**, "entailed" (the hypothesis in :data:`SNLI_VE_ENTAILED`)
  against "not entailed" (:data:`SNLI_VE_REFERENCE`, a caption that says nothing), neutral
  and contradiction both counting as "not entailed": 81 % on 48 pairs (majority 67 %).
  Three labels rendered as three hypotheses ("...", "maybe ...", "it is not true that
  ...", and two variants) gave 23-44 % (chance 33 %): CLIP's text tower does not read
  negation or hedging, while the image-hypothesis cosine itself ranks entailed pairs above
  contradicted ones with AUC 0.80 and above neutral ones with 0.96;
* VQA candidates: the answer vocabulary, one text per answer shared by every question
  (:data:`VQA_ANSWER_TEMPLATE`): 12 % on 136 questions (majority answer 19 %); by type 54 %
  on "what room", 10 % "what color", ~0 on yes/no and counting, which CLIP cannot answer,
  so the confidence weighting distils mostly where the teacher knows. Question-conditioned
  ``question answer`` texts gained little (14 %) for ``questions x answers`` texts to embed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from envs.errors import DataError
from vln_agent.encoders import (
    CLIPEncoder,
    create_encoder,
    load_encoder,
    read_checkpoint_metadata,
)
from vln_agent.extract_images import GRID_LAYOUT, ImageFeatures, open_image_features
from vqa_ve.data.vqa import AnswerVocabulary
from vqa_ve.datasets import QAExample

#: Texts embedded per teacher forward pass.
TEXT_BATCH_SIZE = 64
#: SNLI-VE's two zero-shot candidates: the hypothesis (entailed) and a reference caption
#: that says nothing about the image (not entailed: neutral or contradiction).
SNLI_VE_ENTAILED = "a photo where {}"
SNLI_VE_REFERENCE = "a photo"
#: SNLI-VE's label id of entailment (the other two are "not entailed" to the teacher).
ENTAILMENT_ID = 0
#: A VQA answer as a zero-shot candidate.
VQA_ANSWER_TEMPLATE = "a photo of {}"


@torch.no_grad()
def embed_texts(
    encoder: CLIPEncoder, texts: Sequence[str], batch_size: int = TEXT_BATCH_SIZE
) -> torch.Tensor:
    """Unit-normalised teacher text embeddings ``[N, E]`` (float32, CPU) of ``texts``,
    ``batch_size`` at a time, in eval mode."""
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = [
            encoder.encode_text(
                encoder.tokenize(list(texts[start : start + batch_size])),  # [n, 77]
                normalize=True,
                trim_padding=True,
            ).cpu()  # [n, E]
            for start in range(0, len(texts), batch_size)
        ]
    finally:
        encoder.train(was_training)
    if not chunks:
        return torch.empty(0, encoder.embed_dim)
    return torch.cat(chunks)  # [N, E]


class TextEmbeddingCache:
    """Teacher text embeddings by text (``text -> [E]``), each text embedded once."""

    def __init__(self, encoder: CLIPEncoder, batch_size: int = TEXT_BATCH_SIZE) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.embeddings: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.embeddings)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N, E]`` embeddings of ``texts`` (the missing ones embedded in batches)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.embeddings))
        if missing:
            new = embed_texts(self.encoder, missing, self.batch_size)  # [M, E]
            self.embeddings.update(zip(missing, new, strict=True))
        if not texts:
            return torch.empty(0, self.encoder.embed_dim)
        return torch.stack([self.embeddings[t] for t in texts])  # [N, E]


@torch.no_grad()
def project_grid(encoder: CLIPEncoder, grid: torch.Tensor) -> torch.Tensor:
    """Stored grid cells ``[..., C]`` (``encode_image_grid(project=False)``) -> the same
    cells in the joint space ``[..., E]`` (what ``project=True`` gives)."""
    visual = encoder.model.visual
    grid = grid.to(encoder.device, torch.float32)
    if encoder.is_vit:
        return grid if visual.proj is None else grid @ visual.proj.float()  # [..., E]
    if encoder.is_resnet:
        pool = visual.attnpool
        return pool.c_proj(pool.v_proj(grid))  # [..., E]
    raise ValueError(f"{encoder.model_name}: grid features need a ViT or ModifiedResNet tower")


def resample_grid(
    cells: torch.Tensor, source: tuple[int, int], target: tuple[int, int]
) -> torch.Tensor:
    """Row-major grid cells ``[B, h*w, E]`` of a ``source`` ``(h, w)`` grid resampled onto
    the ``target`` grid ``[B, h'*w', E]`` when the student's grid differs from the
    teacher's: averaged over the cells each target cell covers when the target is no finer
    (a pooled ``(1, 1)`` student gets the mean cell), bilinear otherwise."""
    if source == target:
        return cells
    size, _, dim = cells.shape
    image = cells.transpose(1, 2).reshape(size, dim, *source)  # [B, E, h, w]
    if target[0] <= source[0] and target[1] <= source[1]:
        image = F.adaptive_avg_pool2d(image, target)  # [B, E, h', w']
    else:
        image = F.interpolate(image, size=target, mode="bilinear", align_corners=False)
    return image.reshape(size, dim, -1).transpose(1, 2)  # [B, h'*w', E]


class TeacherImageFeatures:
    """The teacher's image features by image id, from one or several ``--grid`` image
    feature files (one per image folder; an id is read from the first file holding it)."""

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        encoder: CLIPEncoder,
    ) -> None:
        self.encoder = encoder
        listed = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        if not listed:
            raise ValueError("no teacher feature files")
        self.files: list[ImageFeatures] = []
        try:
            for path in listed:
                self.files.append(open_image_features(path))
                self._check(self.files[-1])
        except BaseException:
            self.close()
            raise
        first = self.files[0]
        #: ``(h, w)`` of the teacher's grid.
        self.grid_size = (int(first.attrs["grid_height"]), int(first.attrs["grid_width"]))

    def _check(self, features: ImageFeatures) -> None:
        if features.layout != GRID_LAYOUT or features.grid_shape is None:
            raise DataError(features.path, "teacher features need grid cells: use --grid")
        model = features.attrs.get("model_name")
        if isinstance(model, str) and model != self.encoder.model_name:
            raise DataError(
                features.path, f"made by {model}, but the teacher is {self.encoder.model_name}"
            )
        if self.files[0].grid_shape != features.grid_shape:
            raise DataError(features.path, f"grid differs from {self.files[0].path}'s")

    def _file_of(self, image_id: str) -> ImageFeatures:
        for features in self.files:
            if image_id in features:
                return features
        raise DataError(self.files[0].path, f"no teacher features for image {image_id}")

    def require(self, image_ids: Iterable[str]) -> None:
        """Fail fast (one line) when an image has no teacher features: reads the files'
        index only, once per distinct image."""
        for image_id in dict.fromkeys(image_ids):
            self._file_of(image_id)

    def pooled(self, image_ids: Sequence[str]) -> torch.Tensor:
        """Pooled image embeddings ``[B, E]``."""
        return torch.stack([torch.from_numpy(self._file_of(i).pooled(i)) for i in image_ids])

    def cells(self, image_ids: Sequence[str]) -> torch.Tensor:
        """Grid cells in the joint space ``[B, h*w, E]``."""
        grid = torch.stack([torch.from_numpy(self._file_of(i).grid(i)) for i in image_ids])
        return project_grid(self.encoder, grid).cpu()  # [B, h*w, E]

    def close(self) -> None:
        for features in self.files:
            features.close()


def load_teacher(path: str | os.PathLike[str], model_name: str) -> CLIPEncoder:
    """The frozen teacher CLIP (eval mode, no gradients) from a clipvil encoder checkpoint
    (which names its model) or any open_clip weight file of ``model_name``."""
    if read_checkpoint_metadata(path) is not None:
        encoder = load_encoder(path)
    else:
        encoder = create_encoder(model_name, path)
    encoder.requires_grad_(False)
    return encoder.eval()


def instance_text(example: QAExample) -> str:
    """The text the teacher scores grid cells against (see the module)."""
    context = example.texts[0][0]
    if len(example.texts) == 1:
        return context  # the VQA question / the SNLI-VE hypothesis
    if example.label is None:
        return context
    return f"{context} {example.texts[example.label][1]}"


def candidate_texts(
    task: str, example: QAExample, answers: AnswerVocabulary | None = None
) -> list[str]:
    """The zero-shot candidates of ``example`` (see the module): VQA in answer order, VCR
    in choice order, SNLI-VE ``[entailed, not entailed]``."""
    if task == "vqa":
        if answers is None:
            raise ValueError("VQA candidates need the answer vocabulary")
        return [VQA_ANSWER_TEMPLATE.format(answer) for answer in answers.answers]
    if task == "snli-ve":
        return [SNLI_VE_ENTAILED.format(example.texts[0][0]), SNLI_VE_REFERENCE]
    if task == "vcr":
        return [f"{context} {choice}" for context, choice in example.texts]
    raise ValueError(f"task {task!r}")


def teacher_target(task: str, target: torch.Tensor) -> torch.Tensor:
    """A batch's target over the teacher's candidates: SNLI-VE label ids ``[B]`` become
    ``0`` (entailed) / ``1`` (not entailed); VQA soft scores and VCR choices are kept."""
    if task == "snli-ve":
        return (target != ENTAILMENT_ID).long()  # [B]
    return target
