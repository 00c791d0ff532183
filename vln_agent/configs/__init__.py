"""The shipped training recipes (JSON), installed with the package.

``clipvil <train command> --config NAME`` reads ``NAME.json`` from here (or any file path);
see :func:`vln_agent.training.settings.recipe_path`. The checkpoint cards cite these files.

- ``follower-stage1.json`` / ``follower-stage2.json``: the shipped follower's two stages.
- ``follower-envdrop.json``: R2R-EnvDrop's recipe (``train-vln``'s defaults), for R2R.
- ``speaker-envdrop.json``: the EnvDrop speaker (``train-speaker``'s defaults).
- ``clip-small-pretrain.json``: the shipped small CLIP (``pretrain-clip``).
"""
