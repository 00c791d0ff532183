"""Pretraining image encoders on a synthetic world's views (issue 4 section 3).

* :mod:`.data`: the captioned views of a split's houses, their labels from the scene
  files, and the rendered encoder inputs (a uint8 ``.npy`` cache, numpy only);
* :mod:`.objectives`: CLIP's contrastive loss over image-caption pairs, and the
  in-domain supervised baseline (room type + visible objects, linear heads);
* :mod:`.train`: the shared training loop (settings, logs, resumable checkpoints);
* :mod:`.zeroshot`: zero-shot room and object classification on held-out houses.
"""
