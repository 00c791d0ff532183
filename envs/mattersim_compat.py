"""Alias of :mod:`envs.mattersim.compat`, the ``import MatterSim`` drop-in, at its first path.

Code written against the earlier layout keeps working unchanged::

    import envs.mattersim_compat as MatterSim

    sim = MatterSim.Simulator()

Importing this module binds its name to :mod:`envs.mattersim.compat` itself (the same module
object, so attributes, ``isinstance`` checks and monkeypatching agree). New code imports
:mod:`envs.mattersim.compat`.
"""

from __future__ import annotations

import sys

from envs.mattersim import compat

sys.modules[__name__] = compat
