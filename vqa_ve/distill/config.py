"""Settings of CLIP-TD distillation, one section of a QA training run.

:class:`DistillConfig` is written to be nested as ``QATrainConfig.distill`` (a field whose
default is a frozen dataclass is a section, see :mod:`vln_agent.training.settings`): its
``#:`` comments become the ``train-qa`` flags (``--distill``, ``--teacher``,
``--token-scorer``, ``--weighting``, ...). Field names carry a prefix where a bare name
would be vague on the command line, and none repeats a field of ``QATrainConfig`` or
``QAModelConfig`` (a flat recipe key is routed to the one section that has it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: ``none``: plain fine-tuning; ``naive``: every valid image token, constant weight;
#: ``clip-td``: adaptively selected tokens, per-instance weight.
DISTILL_MODES = ("none", "naive", "clip-td")
#: Who scores the tokens for the selection (:mod:`vqa_ve.distill.selection`).
TOKEN_SCORERS = ("clip", "student-attention")
#: Per-instance weights (:mod:`vqa_ve.distill.weighting`).
WEIGHTINGS = ("constant", "teacher-confidence", "teacher-confidence-x-student-uncertainty")
#: Distance between projected student tokens and teacher features (:mod:`.loss`).
DISTANCES = ("cosine", "l2")
#: Which student image tokens are projected and matched: the fusion encoder's outputs at
#: the image positions, or the image projection's outputs (before any fusion layer).
STUDENT_TOKENS = ("encoder-output", "image-projection")


@dataclass(frozen=True)
class DistillConfig:
    """CLIP-TD: distil a CLIP teacher into the QA fusion model during fine-tuning only."""

    #: Distillation: ``none`` (plain fine-tuning), ``naive`` (every image token, constant
    #: weight) or ``clip-td`` (adaptive tokens per instance, dynamic weight per instance).
    distill_mode: str = field(
        default="none", metadata={"choices": DISTILL_MODES, "flags": ("--distill",)}
    )
    #: The teacher CLIP's weights file (a clipvil checkpoint or open_clip weights); needed
    #: by ``naive`` and ``clip-td``, never at evaluation.
    teacher: str | None = None
    #: The teacher's open_clip model name (a clipvil checkpoint records its own).
    teacher_model: str = "clipvil-small"
    #: Image feature files of the teacher (``clipvil features --images DIR --grid`` run
    #: with the teacher's weights, one per image folder): their grid cells are the
    #: distillation targets, so training never runs the teacher's image tower.
    teacher_features: tuple[str, ...] = ()
    #: What ranks the image tokens of ``clip-td``: ``clip`` (cosine of each teacher grid
    #: cell to the teacher's embedding of the instance's text) or ``student-attention``
    #: (the student's last-layer attention from its pooled token).
    token_scorer: str = field(default="clip", metadata={"choices": TOKEN_SCORERS})
    #: ``clip-td`` keeps, per instance, the fewest top-scored tokens that hold this share
    #: of the softmax-normalised score mass (peaked scores: few tokens; flat: many).
    selection_mass: float = 0.5
    #: ``clip-td`` keeps at least this many tokens per instance.
    min_tokens: int = 1
    #: Per-instance weight of ``clip-td``: ``constant`` (1), ``teacher-confidence`` (the
    #: teacher's zero-shot probability of the right candidate) or
    #: ``teacher-confidence-x-student-uncertainty`` (times 1 - the student's probability).
    weighting: str = field(default="teacher-confidence", metadata={"choices": WEIGHTINGS})
    #: ``clip-td``: weight 0 where the teacher's zero-shot top candidate is wrong.
    zero_when_teacher_wrong: bool = False
    #: Distance of projected student tokens to teacher features: ``cosine`` (1 - cos: the
    #: geometry CLIP is trained and queried in, blind to feature norms) or ``l2`` (mean
    #: squared error of the raw features, CLIP-KD's feature mimicry: norms count too).
    distance: str = field(default="cosine", metadata={"choices": DISTANCES})
    #: Student tokens matched to the teacher's grid cells: ``encoder-output`` (contextual
    #: tokens after the last fusion layer: the term trains the whole stack) or
    #: ``image-projection`` (the projected image features only).
    student_tokens: str = field(default="encoder-output", metadata={"choices": STUDENT_TOKENS})
    #: Weight of ``distill_loss`` next to ``task_loss``.
    distill_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("distill_mode", self.distill_mode, DISTILL_MODES),
            ("token_scorer", self.token_scorer, TOKEN_SCORERS),
            ("weighting", self.weighting, WEIGHTINGS),
            ("distance", self.distance, DISTANCES),
            ("student_tokens", self.student_tokens, STUDENT_TOKENS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r}, expected one of {allowed}")
        if not 0.0 < self.selection_mass <= 1.0:
            raise ValueError(f"selection_mass {self.selection_mass} must be in (0, 1]")
        if self.min_tokens < 1:
            raise ValueError(f"min_tokens {self.min_tokens} must be >= 1")
        if self.distill_loss_weight < 0.0:
            raise ValueError(f"distill_loss_weight {self.distill_loss_weight} must be >= 0")
        if self.enabled and (self.teacher is None or not self.teacher_features):
            raise ValueError(
                f"distill_mode {self.distill_mode} needs the teacher's weights (teacher) and "
                "its image feature files (teacher_features)"
            )

    @property
    def enabled(self) -> bool:
        """Whether the run distils at all (``naive`` or ``clip-td``)."""
        return self.distill_mode != "none"
