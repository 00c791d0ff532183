"""The official question-answering metrics, as pure functions (VQA accuracy, VCR Q->A / QA->R)."""
