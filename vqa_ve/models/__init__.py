"""QA models: the single-stream fusion model with its VQA / SNLI-VE / VCR heads."""

from __future__ import annotations

from vqa_ve.models.fusion import QABatch, QAFusionModel, QAModelConfig, load_qa_model

__all__ = ["QABatch", "QAFusionModel", "QAModelConfig", "load_qa_model"]
