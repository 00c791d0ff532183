"""The one exception type for bad input data (and unwritable outputs), and how it is worded."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: a missing file, malformed JSON, a missing key, a wrong shape.

    The message is always one line of the form ``"<file>: <problem>"`` so that the
    command-line interface can print it as is and exit with status 2.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self) -> tuple[type[DataError], tuple[str, str]]:
        """Pickle as ``(path, problem)``, so the error crosses process pools intact."""
        return type(self), (self.path, self.problem)


class OutputError(DataError):
    """An output that cannot be written: its folder cannot be created, the disk is full or
    read-only, permission is denied. Nothing is left at the output path."""
