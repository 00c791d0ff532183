"""R2R navigation episodes on the batch simulator: what the Gymnasium envs are built from.

- :mod:`envs.nav.batch`: :class:`~envs.nav.batch.NavBatch`, B agents each following an
  instruction (the one implementation behind :mod:`envs.gym_env`);
- :mod:`envs.nav.inputs`: its settings, episodes, tokenized instructions and features;
- :mod:`envs.nav.candidates`: R2R-EnvDrop's candidate actions and how a move to one is made;
- :mod:`envs.nav.rewards`: the reward of a step.
"""
