"""QA data loaders in the formats the datasets are released in (VQA v2, SNLI-VE, VCR)."""
