"""One fusion model for VQA, SNLI-VE and VCR: a compact single-stream transformer.

Choice: a single-stream encoder (VisualBERT / the CLIP-ViL paper's V&L model, shrunk). The
text tokens (a word embedding over a word vocabulary built from the training text, see
:mod:`vqa_ve.datasets`) and the image tokens (the CLIP grid cells of
``clipvil features --images --grid``, or the pooled vector as one token) are projected to
one width ``d``, given a position embedding (word position; grid-cell index, which is the
2-D position of a row-major grid) and a segment embedding (first text, second text,
image), and run through a few pre-norm transformer layers; the first token (``<BOS>``,
used as [CLS]) pooled after a final LayerNorm feeds the task's head. Why single-stream:
one stack with cross-modal attention in every layer is the simplest model where the CLIP
features matter (a two-tower late fusion would only see the pooled vector), and at the
small defaults (d=64, 2 layers) it trains on 2 CPU cores.

Heads (one per model, chosen by :attr:`QAModelConfig.task`):

- ``vqa``: ``num_answers`` logits, binary cross entropy against the soft scores of
  :class:`~vqa_ve.data.vqa.AnswerVocabulary` (summed over answers as LXMERT / CLIP-ViL);
- ``snli-ve``: 3 logits (entailment, neutral, contradiction), cross entropy;
- ``vcr``: one score per (context, choice) sequence; the 4 scores of a question go through
  a 4-way cross entropy (Q->A and QA->R alike, r2c's formulation).

Losses come back by name (``{"task_loss": ...}``) so a distillation term can join them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from envs.tokenizer import PAD_ID, Tokenizer
from vln_agent.training.checkpoint import load_model

if TYPE_CHECKING:
    from vqa_ve.encoding import EncodedQAModel

#: The tasks (and the checkpoint's heads).
TASKS = ("vqa", "snli-ve", "vcr")
#: SNLI-VE's labels (entailment, neutral, contradiction).
NUM_ENTAILMENT_LABELS = 3
#: Segment ids: the first text, the second text (a VCR choice), the image.
TEXT_SEGMENT, CHOICE_SEGMENT, IMAGE_SEGMENT = 0, 1, 2
NUM_SEGMENTS = 3
#: The checkpoint kind of every QA model.
QA_KIND = "qa"
#: The checkpoint entry of a model that encodes its images itself (:mod:`vqa_ve.encoding`).
ENCODER_PAYLOAD_KEY = "image_encoder"
#: Position embeddings of the image tokens: one per grid-cell index (row-major), or a row
#: plus a column embedding (CLIP-ViL pretraining's x / y embeddings of the grid).
INDEX_POSITIONS, GRID_POSITIONS = "index", "2d"
IMAGE_POSITIONS = (INDEX_POSITIONS, GRID_POSITIONS)


@dataclass(frozen=True)
class QAModelConfig:
    """Architecture of the fusion model (sizes from the data are filled in by the trainer)."""

    #: Which head: ``vqa``, ``snli-ve`` or ``vcr`` (set from the run's task).
    task: str = field(default="vqa", metadata={"derived": True})
    #: Word vocabulary size (the tokenizer's).
    vocab_size: int = field(default=0, metadata={"derived": True})
    #: Answers of the VQA head (0 for the other tasks).
    num_answers: int = field(default=0, metadata={"derived": True})
    #: Channels of one image token and image tokens per image (grid cells, or 1: pooled).
    feature_dim: int = field(default=0, metadata={"derived": True})
    num_regions: int = field(default=0, metadata={"derived": True})
    #: Text tokens per sequence (longer texts are cut, ending with <EOS>).
    max_text_length: int = 40
    #: Width of the transformer.
    hidden_size: int = 64
    #: Transformer layers and attention heads.
    num_layers: int = 2
    num_heads: int = 4
    #: Dropout inside the transformer and on the embeddings.
    dropout: float = 0.1
    #: A blind (question-only) baseline: every image token is zeroed before it enters the
    #: model, so the same architecture and training see the text alone.
    blind: bool = False
    #: Image-token positions: ``index`` (one embedding per cell) or ``2d`` (row + column
    #: embeddings over a ``grid_height`` x ``num_regions / grid_height`` grid).
    image_positions: str = field(default=INDEX_POSITIONS, metadata={"choices": IMAGE_POSITIONS})
    #: Rows of the image grid (1 for pooled features; read from the feature file).
    grid_height: int = field(default=1, metadata={"derived": True})
    #: In training, keep this many randomly chosen image tokens per image (CLIP-ViL
    #: pretraining keeps 100 grid cells); 0 keeps all. Evaluation always sees every token.
    grid_sample: int = 0

    def __post_init__(self) -> None:
        if self.image_positions not in IMAGE_POSITIONS:
            raise ValueError(
                f"image_positions {self.image_positions!r}, expected one of {IMAGE_POSITIONS}"
            )
        if self.grid_sample < 0:
            raise ValueError(f"grid_sample must be >= 0, got {self.grid_sample}")

    @property
    def grid_width(self) -> int:
        """Columns of the image grid."""
        return max(1, self.num_regions // max(1, self.grid_height))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def num_outputs(self) -> int:
        """Logits per sequence."""
        if self.task == "vqa":
            return self.num_answers
        return NUM_ENTAILMENT_LABELS if self.task == "snli-ve" else 1


@dataclass(frozen=True)
class QABatch:
    """Model inputs: ``tokens``/``segments`` ``[B, L]`` (VCR ``[B, 4, L]``), ``image``
    ``[B, R, F]``, ``target`` (VQA soft scores ``[B, A]``; class ids ``[B]``; None unlabelled)."""

    tokens: torch.Tensor
    segments: torch.Tensor
    image: torch.Tensor
    target: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> QABatch:
        target = None if self.target is None else self.target.to(device)
        return QABatch(
            self.tokens.to(device), self.segments.to(device), self.image.to(device), target
        )


class QAFusionModel(nn.Module):
    """Single-stream transformer over text + image tokens with one task head."""

    def __init__(self, config: QAModelConfig) -> None:
        super().__init__()
        if config.task not in TASKS:
            raise ValueError(f"task {config.task!r}, expected one of {TASKS}")
        if min(config.vocab_size, config.feature_dim, config.num_regions, config.num_outputs) < 1:
            raise ValueError("vocab_size, feature_dim, num_regions and the outputs must be >= 1")
        if config.image_positions == GRID_POSITIONS and (
            config.grid_height < 1 or config.grid_height * config.grid_width != config.num_regions
        ):
            raise ValueError(
                f"2d positions need num_regions ({config.num_regions}) = grid_height "
                f"({config.grid_height}) x columns"
            )
        self.config = config
        width = config.hidden_size
        self.word_embedding = nn.Embedding(config.vocab_size, width, padding_idx=PAD_ID)
        self.text_position = nn.Embedding(config.max_text_length, width)
        self.image_projection = nn.Sequential(
            nn.LayerNorm(config.feature_dim), nn.Linear(config.feature_dim, width)
        )
        if config.image_positions == GRID_POSITIONS:
            self.image_row = nn.Embedding(config.grid_height, width)
            self.image_column = nn.Embedding(config.grid_width, width)
        else:
            self.image_position = nn.Embedding(config.num_regions, width)
        self.segment_embedding = nn.Embedding(NUM_SEGMENTS, width)
        self.embedding_norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            width,
            config.num_heads,
            4 * width,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(width)
        self.head = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, config.num_outputs)
        )

    def cell_positions(self, cells: torch.Tensor) -> torch.Tensor:
        """Position embeddings ``[..., d]`` of image-token indices ``cells`` (row-major)."""
        if self.config.image_positions == GRID_POSITIONS:
            columns = self.config.grid_width
            return self.image_row(cells // columns) + self.image_column(cells % columns)
        return self.image_position(cells)

    def sample_cells(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """In training with ``grid_sample``, ``grid_sample`` random tokens of each image
        ``[N, S, F]`` and their cell indices ``[N, S]`` (in grid order); else ``image`` and
        None (every cell, in order)."""
        keep = self.config.grid_sample
        if not self.training or keep == 0 or keep >= image.shape[1]:
            return image, None
        order = torch.rand(image.shape[:2], device=image.device).argsort(dim=1)  # [N, R]
        cells = order[:, :keep].sort(dim=1).values  # [N, S]
        picked = image.gather(1, cells[..., None].expand(-1, -1, image.shape[2]))  # [N, S, F]
        return picked, cells

    def hidden_states(
        self,
        tokens: torch.Tensor,
        segments: torch.Tensor,
        image: torch.Tensor,
        cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every output ``[N, L+R, d]`` (after the final LayerNorm) of ``tokens`` /
        ``segments`` ``[N, L]`` and ``image`` ``[N, R, F]``, whose tokens are the grid cells
        ``cells`` ``[N, R]`` (None: all cells in order); text first, position 0 is [CLS]."""
        length, regions = tokens.shape[1], image.shape[1]
        if self.config.blind:
            image = torch.zeros_like(image)  # [N, R, F]: no visual information
        positions = torch.arange(length, device=tokens.device)  # [L]
        text = (
            self.word_embedding(tokens)  # [N, L, d]
            + self.text_position(positions)[None]  # [1, L, d]
            + self.segment_embedding(segments)  # [N, L, d]
        )
        if cells is None:
            where = self.cell_positions(torch.arange(regions, device=image.device))[None]
        else:
            where = self.cell_positions(cells)  # [N, R, d]
        visual = (
            self.image_projection(image)  # [N, R, d]
            + where  # [1 or N, R, d]
            + self.segment_embedding.weight[IMAGE_SEGMENT]  # [d]
        )
        hidden = self.drop(self.embedding_norm(torch.cat([text, visual], dim=1)))  # [N, L+R, d]
        padding = torch.cat(
            [tokens == PAD_ID, torch.zeros_like(image[..., 0], dtype=torch.bool)], dim=1
        )  # [N, L+R]
        hidden = self.encoder(hidden, src_key_padding_mask=padding)  # [N, L+R, d]
        return self.final_norm(hidden)  # [N, L+R, d]

    def encode(
        self,
        tokens: torch.Tensor,
        segments: torch.Tensor,
        image: torch.Tensor,
        cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The pooled [CLS] ``[N, d]`` (see :meth:`hidden_states`)."""
        return self.hidden_states(tokens, segments, image, cells)[:, 0]  # [N, d]

    def forward(self, batch: QABatch) -> torch.Tensor:
        """Logits: VQA ``[B, A]``, SNLI-VE ``[B, 3]``, VCR ``[B, 4]`` (one per choice)."""
        image, cells = self.sample_cells(batch.image)  # [B, R, F], [B, R] or None
        if self.config.task != "vcr":
            return self.head(self.encode(batch.tokens, batch.segments, image, cells))  # [B, K]
        size, choices, length = batch.tokens.shape
        image = image.repeat_interleave(choices, dim=0)  # [B*4, R, F]: a question's 4 choices
        if cells is not None:  # see the same cells
            cells = cells.repeat_interleave(choices, dim=0)  # [B*4, R]
        pooled = self.encode(
            batch.tokens.reshape(size * choices, length),  # [B*4, L]
            batch.segments.reshape(size * choices, length),  # [B*4, L]
            image,
            cells,
        )  # [B*4, d]
        return self.head(pooled).reshape(size, choices)  # [B, 4]

    def losses(self, batch: QABatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``{"task_loss": ...}`` of a labelled batch, and the logits."""
        if batch.target is None:
            raise ValueError("a batch without targets has no loss")
        logits = self(batch)
        if self.config.task == "vqa":
            loss = F.binary_cross_entropy_with_logits(logits, batch.target) * logits.shape[1]
        else:
            loss = F.cross_entropy(logits, batch.target)
        return {"task_loss": loss}, logits


def load_qa_model(
    path: str | os.PathLike[str],
) -> tuple[QAFusionModel | EncodedQAModel, Tokenizer, dict[str, Any]]:
    """A trained QA model (``kind: qa`` checkpoint) in eval mode, its word tokenizer and the
    payload (``extra["answers"]``: the VQA answer vocabulary); bad files are one-line
    :class:`~envs.errors.DataError`. A checkpoint of a run that encoded its images on the
    fly gives the model with its encoder (:class:`~vqa_ve.encoding.EncodedQAModel`)."""
    tokenizers: list[Tokenizer] = []

    def build(payload: dict[str, Any]) -> QAFusionModel | EncodedQAModel:
        tokenizers.append(Tokenizer(payload["vocabulary"]))
        if ENCODER_PAYLOAD_KEY in payload:
            from vqa_ve.encoding import build_encoded_model  # it builds on this module

            return build_encoded_model(payload)
        return QAFusionModel(QAModelConfig(**payload["model_config"]))

    model, payload = load_model(path, QA_KIND, build)
    return model, tokenizers[0], payload
