"""The one exception type for bad input data, and how it is worded."""

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
