"""V&L pretraining (CLIP-ViL's second scenario): the fusion transformer pretrained on
image-caption pairs with masked language modelling and image-text matching, then VQA, and
fine-tuned on VQA, SNLI-VE and VCR with ``clipvil train-qa --init``.

Modules: :mod:`.objectives` (masks, mismatched pairs), :mod:`.model` (the heads),
:mod:`.data` (batches), :mod:`.config`, :mod:`.trainer` (``clipvil pretrain-vl``),
:mod:`.transfer` (what fine-tuning takes from a pretrained checkpoint).
"""
