"""envs.fileio: JSON errors with line and column, and atomic writes that fail cleanly.

The file-system failures are real, not mocked: a full disk is a 64 kB tmpfs (when running
as root) and a file-size limit (``RLIMIT_FSIZE``, in a subprocess, anywhere); a read-only
folder is a read-only tmpfs (root ignores permission bits) or a ``chmod 0o500`` folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envs.errors import DataError, OutputError
from envs.fileio import make_output_dir, read_json, write_json

IS_ROOT = os.geteuid() == 0
#: Size of the "full disk": room for a few small files.
TMPFS_SIZE = "64k"
#: Limit on the size of any file the subprocess writes (``RLIMIT_FSIZE``).
FILE_SIZE_LIMIT = 4096


# ------------------------------------------------------------------------------ read_json
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1,\n "b" 2}', "line 2, column 6: malformed JSON: Expecting ':' delimiter"),
        ("[1, 2,\n\n   ]", "line 3, column 4: malformed JSON: Expecting value"),
        ("[1] [2]", "line 1, column 5: malformed JSON: Extra data (expected the end of the file"),
        ('{"a": "b', "line 1, column 7: malformed JSON: Unterminated string starting (expected"),
        ('["a\\q"]', "line 1, column 4: malformed JSON: Invalid \\escape (expected one of"),
        ("", "empty file, expected JSON"),
        (" \n\t", "empty file, expected JSON"),
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
        ("1" * 5000, "unreadable JSON value (Exceeds the limit (4300 digits)"),
    ],
)
def test_malformed_json_names_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_json(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert "\n" not in str(err.value) and " at at " not in str(err.value)


def test_unreadable_json_files(tmp_path):
    (tmp_path / "latin1.json").write_bytes(b'["caf\xe9"]')
    (tmp_path / "file").write_text("[]")
    (tmp_path / "dir.json").mkdir()
    cases = {
        tmp_path / "latin1.json": "byte 5: not UTF-8 text, expected a JSON file",
        tmp_path / "missing.json": "file not found, expected a JSON file",
        tmp_path / "dir.json": "is a directory, expected a JSON file",
        tmp_path / "file" / "under.json": "cannot read (Not a directory), expected a JSON file",
    }
    for path, message in cases.items():
        with pytest.raises(DataError) as err:
            read_json(path)
        assert str(err.value) == f"{path}: {message}"


# ---------------------------------------------------------------------------- atomic_write
def assert_nothing_left(folder: Path, keep: set[str] = frozenset()) -> None:
    """No output and no temporary file in ``folder`` beyond ``keep``."""
    assert {p.name for p in folder.iterdir()} == set(keep)


def test_a_path_under_a_regular_file_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub" / "out.json"
    with pytest.raises(OutputError) as err:
        write_json(out, {"a": 1})
    assert str(err.value) == (f"{out}: cannot create its folder {out.parent} (Not a directory)")
    assert isinstance(err.value, DataError)  # the CLI's one except
    assert_nothing_left(tmp_path, {"file"})
    with pytest.raises(OutputError, match="cannot create the folder"):
        make_output_dir(out.parent)
    with pytest.raises(OutputError, match="a file of that name exists"):
        make_output_dir(tmp_path / "file")


def test_a_folder_at_the_output_path_is_an_output_error(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match=r"out.json: cannot write \(Is a directory\)"):
        write_json(tmp_path / "out.json", [1])
    assert_nothing_left(tmp_path, {"out.json"})
    assert_nothing_left(tmp_path / "out.json")


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temp(tmp_path):
    write_json(tmp_path / "out.json", {"old": True})
    with pytest.raises(TypeError):
        write_json(tmp_path / "out.json", {"new": object()})
    assert read_json(tmp_path / "out.json") == {"old": True}
    assert_nothing_left(tmp_path, {"out.json"})


def test_a_long_output_name_still_fits_its_temporary_name(tmp_path):
    out = tmp_path / ("n" * 250 + ".json")
    write_json(out, [1])
    assert read_json(out) == [1]


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (root only), unmounted afterwards."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


FULL_DISK_MECHANISMS = ["file size limit"] + (["64 kB tmpfs"] if IS_ROOT else [])

WRITE_TOO_MUCH = """
import resource, sys
from envs.errors import DataError
from envs.fileio import write_json
if sys.argv[2] == "limit":
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    write_json(sys.argv[1], list(range(50_000)))
except DataError as err:
    print(type(err).__name__, err)
"""


@pytest.mark.parametrize("mechanism", FULL_DISK_MECHANISMS)
def test_a_full_disk_is_an_output_error_leaving_nothing(tmp_path, mechanism):
    """Writing more than fits: ``No space left on device`` / ``File too large``."""
    script = WRITE_TOO_MUCH.format(limit=FILE_SIZE_LIMIT)
    with contextlib.ExitStack() as stack:
        if mechanism == "64 kB tmpfs":
            folder = stack.enter_context(mounted_tmpfs(tmp_path / "disk", f"size={TMPFS_SIZE}"))
            reason, how = "No space left on device", "none"
        else:
            folder, reason, how = tmp_path, "File too large", "limit"
        out = folder / "out.json"
        result = subprocess.run(
            [sys.executable, "-c", script, str(out), how],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout == f"OutputError {out}: cannot write ({reason})\n"
        assert_nothing_left(folder)


def test_a_read_only_folder_is_an_output_error_leaving_nothing(tmp_path):
    with contextlib.ExitStack() as stack:
        if IS_ROOT:  # root writes through permission bits: use a read-only file system
            folder = stack.enter_context(mounted_tmpfs(tmp_path / "ro", "ro,size=64k"))
            reason = "Read-only file system"
        else:
            folder = tmp_path / "ro"
            folder.mkdir(mode=0o500)
            stack.callback(folder.chmod, 0o700)
            reason = "Permission denied"
        out = folder / "out.json"
        with pytest.raises(OutputError) as err:
            write_json(out, [1])
        assert str(err.value) == f"{out}: cannot create a file beside it ({reason})"
        with pytest.raises(OutputError, match=reason):
            make_output_dir(folder / "sub")
        assert_nothing_left(folder)


def test_output_errors_cross_process_pools():
    for error in (DataError("a.json", "bad"), OutputError("b.json", "full")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert (copy.path, copy.problem) == (error.path, error.problem)


# ------------------------------------------------------------------------------------ modes
WRITE_UNDER_UMASK = """
import os, stat, sys
os.umask(int(sys.argv[2], 8))
from envs.fileio import atomic_write, write_json
write_json(os.path.join(sys.argv[1], "a.json"), [1])
with atomic_write(os.path.join(sys.argv[1], "b.bin"), "wb") as f:
    f.write(b"x")
print(" ".join(oct(stat.S_IMODE(os.stat(os.path.join(sys.argv[1], n)).st_mode))
               for n in ("a.json", "b.bin")))
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", "0o644"), ("077", "0o600"), ("002", "0o664")])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    """Like ``open(path, "w")``: ``0o666`` less the umask (it used to be 0600 always)."""
    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, str(tmp_path), umask],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [mode, mode]


def test_round_trip(tmp_path):
    data = {"b": [1, 2.5, None], "a": "é"}
    write_json(tmp_path / "x" / "y.json", data)
    assert read_json(tmp_path / "x" / "y.json") == data
    assert list(json.loads((tmp_path / "x" / "y.json").read_text())) == ["b", "a"]


def test_read_jsonl_reads_records_and_names_the_bad_line(tmp_path):
    from envs.fileio import read_jsonl

    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n[2, 3]\n"x"\n', encoding="utf-8")
    assert read_jsonl(good) == [{"a": 1}, [2, 3], "x"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n{"a": }\n', encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_jsonl(bad)
    assert str(caught.value).startswith(f"{bad}: line 3, column 7: malformed JSON")
    deep = tmp_path / "deep.jsonl"
    deep.write_text("1\n" + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2, JSON nested too deeply"):
        read_jsonl(deep)
    with pytest.raises(DataError, match="file not found, expected a JSON Lines file"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_read_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    from envs.fileio import read_jsonl

    path = tmp_path / "separators.jsonl"
    record = {"a": "x\u2028y\u0085z"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n" + '{"b": 2}\n', "utf-8")
    assert read_jsonl(path) == [record, {"b": 2}]
