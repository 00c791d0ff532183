"""Room-to-Room environments, data and metrics (numpy, networkx, gymnasium; never torch).

Single concepts are modules (``constants``, ``errors``, ``fileio``, ``graph``, ``episodes``,
``simulator``, ``gym_env``, ``metrics``, ``evaluate``, ``tokenizer``, ``views``, ``cubemap``);
concepts of several modules are folders: ``features/`` (feature files and angle features),
``maps/`` (top-down maps), ``mattersim/`` (the ``import MatterSim`` drop-in), ``nav/`` (the
navigation episodes behind the Gymnasium envs, with their rewards) and ``synthetic/``.

Importing the package registers the Gymnasium environment ``clipvil/R2R-v0``
(:class:`envs.gym_env.R2RNavEnv`, vector form :class:`envs.gym_env.R2RVectorEnv`). The
registration names the classes by string, so nothing heavy is imported until an env is made.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

#: Gymnasium id of the R2R navigation environment.
R2R_ENV_ID = "clipvil/R2R-v0"

if R2R_ENV_ID not in registry:
    register(
        id=R2R_ENV_ID,
        entry_point="envs.gym_env:R2RNavEnv",
        vector_entry_point="envs.gym_env:R2RVectorEnv",
    )
