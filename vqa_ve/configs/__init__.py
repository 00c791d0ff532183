"""The shipped QA training recipes (JSON), installed with the package.

``clipvil train-qa --config NAME`` reads ``NAME.json`` from here (or any file path); see
:func:`vqa_ve.training.trainer.qa_recipe_path`. Small recipes that train on 2 CPU cores:

- ``qa-vqa.json``: VQA v2 (soft-score BCE over the answer vocabulary).
- ``qa-snli-ve.json``: SNLI-VE (3-way cross entropy).
- ``qa-vcr.json``: VCR Q->A and QA->R (4-way cross entropy over the choices' scores).
- ``pretrain-vl.json``: ``clipvil pretrain-vl`` (MLM + image-text matching for 1,500
  iterations, then + VQA for 1,500; 2-D grid positions, no dropout: at this size dropout
  kept image-text matching at chance for the first thousand iterations).
"""
