"""One writer per feature file: a second writer of the same output, in this process or
another, refuses with one line; a lock left by a killed writer blocks nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features import LOCK_SUFFIX, PARTIAL_SUFFIX, HDF5FeatureWriter, open_features

REPO_ROOT = Path(__file__).resolve().parents[3]
DIM = 4

#: A real process that holds a writer of ``argv[1]`` (one viewpoint written) until killed.
HOLDER = """
import sys, time
import numpy as np
from envs.features import HDF5FeatureWriter
writer = HDF5FeatureWriter(sys.argv[1], 4, dtype="float32")
writer.add("scan", "held", np.zeros((36, 4), np.float32))
print("ready", flush=True)
time.sleep(120)
"""


def views(value: float) -> np.ndarray:
    return np.full((NUM_VIEWS, DIM), value, np.float32)


def lock_of(path: Path) -> Path:
    return Path(f"{path}{LOCK_SUFFIX}")


def test_a_second_writer_in_the_same_process_refuses(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    first = HDF5FeatureWriter(path, DIM, dtype="float32")
    assert lock_of(path).read_text().strip() == str(os.getpid())
    with pytest.raises(DataError) as err:
        HDF5FeatureWriter(path, DIM, dtype="float32", resume=True)
    assert str(err.value) == (
        f"{path}: is being written by another run (process {os.getpid()}): "
        "wait for it to finish (its lock is feats.h5.lock)"
    )
    first.add("s", "v", views(1.0))
    first.close()  # the refused writer touched nothing
    assert not lock_of(path).exists() and not Path(f"{path}{PARTIAL_SUFFIX}").exists()
    with open_features(path) as store:
        assert np.all(store.get("s", "v") == 1.0)


@pytest.mark.parametrize("ending", ["close", "abandon", "discard", "exception"])
def test_every_way_a_writer_ends_releases_its_lock(tmp_path: Path, ending: str) -> None:
    path = tmp_path / "feats.h5"
    if ending == "exception":
        with pytest.raises(RuntimeError), HDF5FeatureWriter(path, DIM) as writer:
            writer.add("s", "v", views(2.0))
            raise RuntimeError("killed mid-way")
    else:
        writer = HDF5FeatureWriter(path, DIM)
        writer.add("s", "v", views(2.0))
        getattr(writer, ending)()
    assert not lock_of(path).exists()
    with HDF5FeatureWriter(path, DIM, resume=True) as again:  # nothing blocks the next one
        kept = ending in ("abandon", "exception")  # the partial file stays for resuming
        assert again.done() == ({"s_v"} if kept else set())


def test_a_writer_in_another_process_blocks_until_it_dies(tmp_path: Path) -> None:
    """Two real processes: the second refuses while the first holds the file; after the
    first is killed (SIGKILL: no clean-up, its lock file stays) the next run resumes."""
    path = tmp_path / "feats.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(DataError, match=rf"another run \(process {holder.pid}\)"):
            HDF5FeatureWriter(path, DIM, dtype="float32", resume=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert lock_of(path).exists()  # stale: nobody holds it any more
    with HDF5FeatureWriter(path, DIM, dtype="float32", resume=True) as writer:
        assert writer.done() == {"scan_held"}
        writer.add("scan", "more", views(3.0))
    assert not lock_of(path).exists()
    with open_features(path) as store:
        assert len(store) == 2
