"""Reading JSON with one-line errors, and writing files atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from envs.errors import DataError


def read_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file, raising :class:`DataError` naming the file on any problem."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, expected a JSON file") from None
    except json.JSONDecodeError as err:
        raise DataError(path, f"malformed JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it onto ``path`` only on success.

    Readers never see a half-written file, and a failure leaves no output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
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
