"""Question answering with CLIP features: VQA v2, SNLI-VE and VCR.

Subpackages:

- :mod:`vqa_ve.data` — loaders and writers of the released formats (VQA v2 questions,
  annotations and results; SNLI-VE JSON Lines; VCR JSON Lines and metadata).
- :mod:`vqa_ve.metrics` — the official metrics (VQA accuracy as ``vqaEval.py``; VCR).
- :mod:`vqa_ve.commands` — the ``clipvil`` question-answering subcommands.

Importing this package imports nothing else (no torch, no files touched).
"""
