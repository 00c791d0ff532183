"""MatterSim's Python API over the batch simulator, for existing R2R code.

- :mod:`envs.mattersim.compat`: the drop-in for ``import MatterSim`` (rendering disabled);
- :mod:`envs.mattersim.state`: its ``SimState`` / ``ViewPoint`` objects, read lazily from
  the arrays of :class:`envs.simulator.BatchSimulator`.

The navigation rules themselves live in :mod:`envs.simulator`.
"""
