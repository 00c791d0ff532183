"""The layout of ``envs``: every module imports without torch, and published paths still work
(this file names the old module paths on purpose)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator

import envs
from envs.constants import NUM_VIEWS
from envs.episodes import load_episodes
from envs.graph import SCANS_FILE

ENVS_DIR = Path(envs.__file__).resolve().parent

#: Imports every module of ``envs``; reports the first one after which torch is loaded and
#: the import chain (the ``envs`` files on the stack) that first asked for torch.
WALK_ENVS = """
import json, pkgutil, sys, traceback

class TorchSpy:
    chain = None

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and TorchSpy.chain is None:
            stack = traceback.extract_stack()[:-1]
            TorchSpy.chain = [f"{f.filename}:{f.lineno}" for f in stack if "/envs/" in f.filename]
        return None

sys.meta_path.insert(0, TorchSpy())
import envs

def fail(name):
    raise ImportError(f"cannot import {name}")

modules, torch_after = [], None
for info in pkgutil.walk_packages(envs.__path__, "envs.", onerror=fail):
    __import__(info.name)
    modules.append(info.name)
    if torch_after is None and "torch" in sys.modules:
        torch_after = info.name
print(json.dumps({"modules": modules, "torch_after": torch_after, "chain": TorchSpy.chain,
                  "file": envs.__file__}))
"""

#: One module of each concept folder, and the top-level single-concept modules.
EXPECTED_MODULES = {
    "envs.constants",
    "envs.errors",
    "envs.fileio",
    "envs.graph",
    "envs.episodes",
    "envs.metrics",
    "envs.evaluate",
    "envs.tokenizer",
    "envs.simulator",
    "envs.gym_env",
    "envs.views",
    "envs.cubemap",
    "envs.features",
    "envs.features.store",
    "envs.features.hdf5",
    "envs.features.tsv",
    "envs.features.angles",
    "envs.maps",
    "envs.maps.data",
    "envs.maps.layers",
    "envs.maps.scene",
    "envs.mattersim",
    "envs.mattersim.compat",
    "envs.mattersim.state",
    "envs.mattersim_compat",
    "envs.nav",
    "envs.nav.batch",
    "envs.nav.candidates",
    "envs.nav.inputs",
    "envs.nav.rewards",
    "envs.synthetic",
    "envs.synthetic.writer",
}

#: Module paths of the flat layout that were never published: gone, with no alias left.
REMOVED_MODULES = [
    "envs.candidates",
    "envs.feature_store",
    "envs.features_hdf5",
    "envs.features_tsv",
    "envs.map_data",
    "envs.map_layers",
    "envs.map_scene",
    "envs.mattersim_state",
    "envs.nav_batch",
    "envs.nav_inputs",
]


def test_every_envs_module_imports_without_torch():
    out = subprocess.run(
        [sys.executable, "-c", WALK_ENVS], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["file"] == envs.__file__  # the subprocess walked the same checkout
    assert EXPECTED_MODULES <= set(report["modules"])
    assert report["torch_after"] is None, (
        f"importing {report['torch_after']} loads torch, through {report['chain']}"
    )


@pytest.mark.parametrize("name", REMOVED_MODULES)
def test_unpublished_flat_paths_are_gone(name):
    spec = importlib.util.find_spec(name)
    # An editable install of another checkout may still serve the old file: not this one's.
    assert spec is None or ENVS_DIR not in Path(spec.origin).resolve().parents


def test_mattersim_compat_is_the_drop_in_under_its_published_name(real_data_dir, tmp_path):
    import envs.mattersim.compat as compat
    import envs.mattersim_compat as MatterSim
    from envs.mattersim_compat import Simulator

    assert MatterSim is compat and Simulator is compat.Simulator
    assert MatterSim.ViewPoint is compat.ViewPoint and MatterSim.cbf is compat.cbf

    episode = load_episodes(real_data_dir, "val_unseen")[0]
    graphs = tmp_path / "connectivity"
    graphs.mkdir()
    name = f"{episode.scan}_connectivity.json"
    (graphs / name).symlink_to(real_data_dir / "connectivity" / name)
    (graphs / SCANS_FILE).write_text(episode.scan + "\n")
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(graphs))
    sim.setRenderingEnabled(False)
    sim.setDiscretizedViewingAngles(True)
    sim.setCameraResolution(640, 480)
    sim.setCameraVFOV(math.radians(60))
    sim.setBatchSize(1)
    sim.initialize()
    sim.newEpisode([episode.scan], [episode.start], [episode.heading], [0.0])
    state = sim.getState()[0]
    assert (state.scanId, state.location.viewpointId) == (episode.scan, episode.start)
    assert 0 <= state.viewIndex < NUM_VIEWS
    navigable = state.navigableLocations
    assert navigable[0].viewpointId == episode.start
    if len(navigable) > 1:
        sim.makeAction([1], [0.0], [0.0])
        assert sim.getState()[0].location.viewpointId == navigable[1].viewpointId


def test_open_features_from_the_features_package(tmp_path):
    from envs.features import HDF5FeatureWriter, open_features

    views = np.arange(NUM_VIEWS * 4, dtype=np.float32).reshape(NUM_VIEWS, 4)
    path = tmp_path / "f.h5"
    with HDF5FeatureWriter(path, 4, dtype="float32") as writer:
        writer.add("scan", "vp", views)
    with open_features(path, feature_columns=3) as store:
        np.testing.assert_array_equal(store.get("scan", "vp"), views[:, :3])


def test_gym_registration_points_at_the_env_classes():
    from envs.gym_env import R2RNavEnv, R2RVectorEnv

    spec = gym.spec(envs.R2R_ENV_ID)
    assert envs.R2R_ENV_ID == "clipvil/R2R-v0"
    assert load_env_creator(spec.entry_point) is R2RNavEnv
    assert load_env_creator(spec.vector_entry_point) is R2RVectorEnv


def test_other_published_paths():
    """README names envs.simulator; the checkpoint card names envs.views.render_encoder_views."""
    from envs.simulator import BatchSimulator
    from envs.views import render_encoder_views

    assert BatchSimulator.__module__ == "envs.simulator"
    assert callable(render_encoder_views)
