"""Reading JSON with one-line errors, and writing files atomically (temp file, then rename).

Both halves speak :class:`~envs.errors.DataError`: a JSON file that cannot be read is
``<file>: line L, column C: <problem>``, an output that cannot be written is an
:class:`~envs.errors.OutputError` naming the output, and nothing is left at its path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from envs.errors import DataError, OutputError

#: Permissions of a new file before the umask applies (what ``open(path, "w")`` asks for).
NEW_FILE_MODE = 0o666
#: Fresh temporary names tried before giving up.
TEMP_NAME_ATTEMPTS = 100
#: Characters of the output's name kept in its temporary name (names have a length limit).
TEMP_NAME_STEM_CHARS = 64
#: What the messages of :mod:`json` mean for whoever fixes the file.
_JSON_HINTS = {
    "Extra data": "expected the end of the file after one JSON value",
    "Invalid control character at": "expected control characters in strings to be escaped",
    "Unterminated string starting at": 'expected a closing "',
    "Invalid \\escape": 'expected one of \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX',
    "Invalid \\uXXXX escape": "expected four hexadecimal digits after \\u",
    "Unexpected UTF-8 BOM (decode using utf-8-sig)": "expected no byte-order mark",
}


def _reason(err: OSError) -> str:
    """The operating system's words for ``err`` (``"No space left on device"``)."""
    return err.strerror or str(err) or type(err).__name__


def read_text(path: str | os.PathLike[str], what: str = "a JSON file") -> str:
    """The UTF-8 text of ``path``; a :class:`DataError` naming it (and ``what`` was expected)
    when it is missing, a folder, not UTF-8 or unreadable."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(path, f"file not found, expected {what}") from None
    except IsADirectoryError:
        raise DataError(path, f"is a directory, expected {what}") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"byte {err.start}: not UTF-8 text, expected {what}") from None
    except OSError as err:
        raise DataError(path, f"cannot read ({_reason(err)}), expected {what}") from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file, raising :class:`DataError` naming the file on any problem.

    Malformed JSON reads ``<file>: line L, column C: malformed JSON: <what was expected>``.
    """
    return parse_json(read_text(path), Path(path))


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """The records of a JSON Lines file (one JSON value per line; blank lines skipped).

    A bad line reads ``<file>: line L, column C: malformed JSON: ...`` (L counts from 1 in
    the file, C within the line).
    """
    path = Path(path)
    records = []
    # lines end at "\n" only: str.splitlines would also split inside strings at U+2028 / U+0085
    for number, line in enumerate(read_text(path, "a JSON Lines file").split("\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(parse_json(line, path))
        except DataError as err:
            problem = err.problem.removeprefix("line 1, ")
            raise DataError(path, f"line {number}, {problem}") from None
    return records


def parse_json(text: str, source: str | os.PathLike[str]) -> Any:
    """Decode JSON ``text`` read from ``source`` (named in the :class:`DataError`)."""
    if not text.strip():
        raise DataError(source, "empty file, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        hint = _JSON_HINTS.get(err.msg)
        words = err.msg.removesuffix(" at")  # "Unterminated string starting at"
        problem = f"{words} ({hint})" if hint else words
        raise DataError(
            source, f"line {err.lineno}, column {err.colno}: malformed JSON: {problem}"
        ) from None
    except RecursionError:
        raise DataError(source, "JSON nested too deeply to read") from None
    except ValueError as err:  # e.g. an integer beyond Python's digit limit
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(source, f"unreadable JSON value ({first})") from None


def _output_error(path: Path, action: str, err: OSError) -> OutputError:
    return OutputError(path, f"cannot {action} ({_reason(err)})")


def make_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output folder ``path`` and its parents (fine when it exists).

    Raises:
        OutputError: naming ``path``, when it exists as a file or cannot be created.
    """
    path = Path(path)
    reason = _make_dir(path)
    if reason:
        raise OutputError(path, f"cannot create the folder ({reason})")
    return path


def _make_dir(path: Path) -> str | None:
    """Create the folder ``path`` and its parents; why that failed, or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "a file of that name exists"
    except OSError as err:
        return _reason(err)
    return None


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``path``, created with :data:`NEW_FILE_MODE`.

    The kernel applies the umask (and any default ACL) at creation, as for any other
    tool's outputs, so nothing needs to read the process-wide umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stem = path.name[:TEMP_NAME_STEM_CHARS]
    for _ in range(TEMP_NAME_ATTEMPTS):
        temp = path.with_name(f".{stem}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags | getattr(os, "O_BINARY", 0), NEW_FILE_MODE), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _discard(temp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it onto ``path`` only on success.

    Readers never see a half-written file, and a failure leaves no output behind (an
    earlier file at ``path`` stays as it was). The file gets the permissions ``open``
    would give it (``0o666`` less the umask: 0644 under umask 022).

    Raises:
        OutputError: naming ``path``, for any failure of the file system (its folder
            cannot be created, permission denied, disk full or read-only); an ``OSError``
            raised while writing the body counts as one.
    """
    path = Path(path)
    reason = _make_dir(path.parent)
    if reason:
        raise OutputError(path, f"cannot create its folder {path.parent} ({reason})")
    try:
        fd, temp = _open_temp(path)
    except OSError as err:
        raise _output_error(path, "create a file beside it", err) from err
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as err:
        _discard(temp)
        raise _output_error(path, "write", err) from err
    except BaseException:
        _discard(temp)
        raise


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON atomically (sorted keys are not imposed: order is kept)."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=indent)
        f.write("\n")


#: Bytes read at a time when hashing a file.
HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (how checkpoint cards and feature files name weights)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as err:
        raise DataError(path, f"cannot read ({err.strerror or err})") from None
    return digest.hexdigest()
