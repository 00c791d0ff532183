"""Outputs the CLI cannot write: one line ``error: <path>: <problem>``, exit 2, nothing left.

Real failures, not mocks: a path under a regular file, ``/proc``, a full disk (a 64 kB
tmpfs when running as root; a file-size limit, ``RLIMIT_FSIZE``, in a subprocess anywhere),
a read-only folder. Also: written files honour the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envs.episodes import load_episodes
from envs.evaluate import reference_predictions, save_predictions
from vln_agent.cli import EXIT_BAD_INPUT, main

IS_ROOT = os.geteuid() == 0
#: Limit on the size of any file a subprocess writes (``RLIMIT_FSIZE``): less than a skybox.
FILE_SIZE_LIMIT = 4096
#: Every way to fill the disk this machine offers.
FULL_DISK_MECHANISMS = ["file size limit"] + (["64 kB tmpfs"] if IS_ROOT else [])
#: Runs the CLI with ``RLIMIT_FSIZE`` set (when argv[1] is "limit"); prints the status.
LIMITED_CLI = """
import resource, sys
if sys.argv[1] == "limit":
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from vln_agent.cli import main
print(main(sys.argv[2:]))
"""


def one_line_error(err: str, path: Path | str) -> str:
    """The problem of a one-line ``error: <path>: <problem>`` (asserted to be one)."""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}"), err
    return err.rstrip("\n")


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (root only), unmounted afterwards."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def run_limited(argv: list[str], limit: bool) -> subprocess.CompletedProcess[str]:
    script = LIMITED_CLI.format(limit=FILE_SIZE_LIMIT)
    return subprocess.run(
        [sys.executable, "-c", script, "limit" if limit else "none", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    )


# --------------------------------------------------------------------------------- world
@pytest.mark.parametrize("where", ["under a regular file", "/proc"])
def test_world_into_an_impossible_folder(tmp_path, capsys, where):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "w" if where == "under a regular file" else Path("/proc/clipvil")
    assert main(["world", "--out", str(out), "--preset", "tiny"]) == EXIT_BAD_INPUT
    line = one_line_error(capsys.readouterr().err, out)
    assert line.startswith(f"error: {out}: cannot create the folder (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("mechanism", FULL_DISK_MECHANISMS)
@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
def test_world_on_a_full_disk_leaves_nothing(tmp_path, mechanism, existing):
    with contextlib.ExitStack() as stack:
        if mechanism == "64 kB tmpfs":
            disk = stack.enter_context(mounted_tmpfs(tmp_path / "disk", "size=64k"))
            reason = "No space left on device"
        else:
            disk, reason = tmp_path, "File too large"
        out = disk / "world"
        if existing:
            out.mkdir()
        argv = ["world", "--out", str(out), "--preset", "tiny", "--workers", "1"]
        result = run_limited(argv, limit=mechanism == "file size limit")
        assert result.stdout.splitlines()[-1] == str(EXIT_BAD_INPUT)
        # tqdm may have drawn a bar first; the error is the one last line
        line = result.stderr.replace("\r", "\n").splitlines()[-1]
        assert result.stderr.endswith(line + "\n") and result.stderr.count("error:") == 1
        assert line.startswith(f"error: {out}/") and line.endswith(f": cannot write ({reason})")
        assert sorted(p.name for p in disk.iterdir()) == (["world"] if existing else [])
        assert not existing or not any(out.iterdir())


# ------------------------------------------------------------------------------ eval-r2r
@pytest.fixture
def submission(tiny_world, tmp_path) -> Path:
    path = tmp_path / "submission.json"
    save_predictions(path, reference_predictions(load_episodes(tiny_world.data_dir, "val_seen")))
    return path


def eval_argv(tiny_world, submission: Path, *outputs: str) -> list[str]:
    argv = ["eval-r2r", "--data", str(tiny_world.data_dir), "--split", "val_seen"]
    return [*argv, "--predictions", str(submission), *outputs]


def test_eval_outputs_are_all_or_nothing(tiny_world, submission, tmp_path, capsys):
    """The summary is written, then the per-instruction file fails: neither is left."""
    (tmp_path / "file").write_text("x")
    out, per = tmp_path / "scores.json", tmp_path / "file" / "per.json"
    argv = eval_argv(tiny_world, submission, "--out", str(out), "--per-instruction", str(per))
    assert main(argv) == EXIT_BAD_INPUT
    line = one_line_error(capsys.readouterr().err, per)
    assert (
        line == f"error: {per}: cannot create its folder {per.parent} (a file of that name exists)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "submission.json"]


def test_eval_into_a_read_only_folder(tiny_world, submission, tmp_path, capsys):
    with contextlib.ExitStack() as stack:
        if IS_ROOT:  # root writes through permission bits: use a read-only file system
            folder = stack.enter_context(mounted_tmpfs(tmp_path / "ro", "ro,size=64k"))
            reason = "Read-only file system"
        else:
            folder = tmp_path / "ro"
            folder.mkdir(mode=0o500)
            stack.callback(folder.chmod, 0o700)
            reason = "Permission denied"
        out = folder / "scores.json"
        assert main(eval_argv(tiny_world, submission, "--out", str(out))) == EXIT_BAD_INPUT
        line = one_line_error(capsys.readouterr().err, out)
        assert line == f"error: {out}: cannot create a file beside it ({reason})"
        assert list(folder.iterdir()) == []


def test_eval_output_honours_the_umask(tiny_world, submission, tmp_path):
    out = tmp_path / "scores.json"
    script = "import os, sys; os.umask(0o027); from vln_agent.cli import main; main(sys.argv[1:])"
    argv = eval_argv(tiny_world, submission, "--out", str(out))
    subprocess.run([sys.executable, "-c", script, *argv], check=True, capture_output=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


# --------------------------------------------------------------------------- checkpoints
SAVE_BIG_CHECKPOINT = """
import resource, sys, torch
from envs.errors import DataError
from vln_agent.training.checkpoint import save_checkpoint
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
payload = {{"kind": "x", "model_config": {{}}, "state_dict": {{"w": torch.zeros(100_000)}}}}
try:
    save_checkpoint(sys.argv[1], payload)
except DataError as err:
    print(type(err).__name__, err)
"""


def test_checkpoint_on_a_full_disk_is_an_output_error(tmp_path):
    """torch's zip writer wraps the file's OSError in a RuntimeError; it is unwrapped."""
    out = tmp_path / "model.pt"
    script = SAVE_BIG_CHECKPOINT.format(limit=FILE_SIZE_LIMIT)
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, check=True
    )
    assert result.stdout == f"OutputError {out}: cannot write (File too large)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train-vln", "train-speaker", "features"])
def test_every_writing_command_reports_an_impossible_out_in_one_line(
    tiny_world, tiny_synthetic_world, tmp_path, capsys, command
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    out = blocker / "under" / ("out.h5" if command == "features" else "run")
    if command == "features":
        argv = ["--data", str(tiny_synthetic_world), "--model", "clipvil-tiny"]
        argv += ["--encoder", "random"]
    else:
        argv = ["--data", str(tiny_world.data_dir), "--features", str(tiny_world.features)]
        argv += ["--iterations", "1", "--batch-size", "4", "--hidden-size", "16"]
    status = main([command, *argv, "--out", str(out), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == EXIT_BAD_INPUT, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and "a-file" in lines[0], lines
    assert blocker.read_text(encoding="utf-8") == "not a folder"
