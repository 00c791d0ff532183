"""Settings of a pretraining run (``clipvil pretrain-vl``): data, objectives, optimizers."""

from __future__ import annotations

from dataclasses import dataclass, field

from vln_agent.training.distributed import DEVICES
from vqa_ve.data.vqa import VQA_ANSWER_VOCABULARY_SIZE
from vqa_ve.models.fusion import GRID_POSITIONS, QAModelConfig

#: Optimizers of a trained image encoder (CLIP-ViL trains its CLIP backbone with SGD).
ENCODER_OPTIMIZERS = ("sgd", "adamw")
#: Where the embedded world (and a COCO download) keeps its caption files, under ``--data``.
TRAIN_CAPTIONS = "coco/annotations/captions_train2014.json"
VAL_CAPTIONS = "coco/annotations/captions_val2014.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of V&L pretraining (small defaults: minutes on 2 CPU cores).

    Stage 1 trains masked language modelling and image-text matching on image-caption
    pairs; from ``qa_from`` on, stage 2 adds VQA as a third objective (CLIP-ViL /
    LXMERT's second stage).
    """

    #: COCO-style caption files trained on (relative to ``--data``, or absolute).
    train_captions: tuple[str, ...] = (TRAIN_CAPTIONS,)
    #: COCO-style caption file evaluated on (MLM / ITM accuracy); empty: none.
    val_captions: str = VAL_CAPTIONS
    #: VQA split of ``--data``'s ``vqa/`` folder for the QA objective; empty: no QA stage.
    qa_split: str = "train2014"
    #: VQA split evaluated with the official accuracy during pretraining; empty: none.
    qa_eval_split: str = "val2014"
    #: The iteration stage 2 (QA) starts at (0: from the start).
    qa_from: int = 150
    #: Optimizer steps.
    iterations: int = 300
    #: Global batch size of caption pairs (a stage-2 step adds a QA batch of this size).
    batch_size: int = 32
    #: AdamW learning rate and weight decay of the transformer and heads.
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    #: Gradients are clipped to this global norm.
    grad_clip: float = 1.0
    #: Share of a caption's words chosen for masked language modelling (BERT: 0.15).
    mask_probability: float = 0.15
    #: Share of each batch's pairs given another image's caption (image-text matching).
    mismatch: float = 0.5
    #: Weights of the objectives in the summed loss.
    mlm_weight: float = 1.0
    itm_weight: float = 1.0
    qa_weight: float = 1.0
    #: Answers kept for the QA objective (the most frequent).
    max_answers: int = VQA_ANSWER_VOCABULARY_SIZE
    #: Words seen fewer times in the training text become <UNK>.
    min_word_count: int = 1
    #: Evaluate (and save) every this many iterations.
    eval_every: int = 100
    #: Evaluate on the first this many captions / questions (0: all).
    eval_limit: int = 0
    #: Log the training losses every this many iterations.
    log_every: int = 10
    #: Random seed (initialisation, batches, masks, mismatched pairs, dropout).
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = field(default="auto", metadata={"choices": DEVICES})
    #: Encode the images on the fly with this CLIP (a clipvil checkpoint, an open_clip
    #: weight file or tag, or ``random``) instead of reading ``--features``; empty: stored
    #: features.
    image_encoder: str = ""
    #: Its open_clip model name (default: the one a clipvil checkpoint records).
    encoder_model: str = ""
    #: Train the image encoder end to end (default: frozen).
    finetune_encoder: bool = False
    #: The trained encoder's own optimizer (CLIP-ViL: SGD) ...
    encoder_optimizer: str = field(default="sgd", metadata={"choices": ENCODER_OPTIMIZERS})
    #: ... its learning rate, and SGD's momentum.
    encoder_learning_rate: float = 1e-3
    encoder_momentum: float = 0.9
    #: Keep the preprocessed images in memory (on-the-fly encoding).
    cache_images: bool = True
    #: The transformer (vocabulary and feature sizes come from the data); pretraining embeds
    #: the grid with row + column positions.
    model: QAModelConfig = QAModelConfig(image_positions=GRID_POSITIONS)

    def __post_init__(self) -> None:
        if not self.train_captions:
            raise ValueError("train_captions names no caption file")
        if not 0.0 < self.mask_probability <= 1.0:
            raise ValueError(f"mask_probability {self.mask_probability} must be in (0, 1]")
        if not 0.0 <= self.mismatch < 1.0:
            raise ValueError(f"mismatch {self.mismatch} must be in [0, 1)")
        if self.qa_split and not 0 <= self.qa_from < self.iterations:
            raise ValueError(f"qa_from {self.qa_from} must be in [0, iterations)")
        if min(self.mlm_weight, self.itm_weight, self.qa_weight) < 0:
            raise ValueError("objective weights must be >= 0")
        if self.finetune_encoder and not self.image_encoder:
            raise ValueError("finetune_encoder needs an image_encoder (images encoded on the fly)")
        if self.encoder_optimizer not in ENCODER_OPTIMIZERS:
            raise ValueError(
                f"encoder_optimizer {self.encoder_optimizer!r}, expected one of "
                f"{ENCODER_OPTIMIZERS}"
            )
