"""What the fuzz tests share: hypothesis settings, byte-level corruption, a hang guard and the
one assertion they all make (a loader returns, or raises a one-line DataError naming the file).

Importable from any test module (``pythonpath = ["tests/helpers"]`` in pyproject.toml).
``CLIPVIL_FUZZ_EXAMPLES=N`` raises the number of examples (and draws fresh ones) for a deeper
run than the suite's fixed examples.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from envs.errors import DataError

#: ``$CLIPVIL_FUZZ_EXAMPLES`` for a deep run (None: the suite's fixed examples).
DEEP_EXAMPLES = os.environ.get("CLIPVIL_FUZZ_EXAMPLES")


def fuzz_settings(examples: int) -> settings:
    """``examples`` fixed examples per property in the suite (no database written into the
    tree, no deadline: :func:`no_hang` bounds each call instead)."""
    return settings(
        max_examples=int(DEEP_EXAMPLES or examples),
        deadline=None,
        database=None,
        derandomize=DEEP_EXAMPLES is None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@st.composite
def corrupted_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with one to four random byte-level edits (flip, truncate, insert, delete)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "truncate":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@contextlib.contextmanager
def no_hang(seconds: float) -> Iterator[None]:
    """Fail (``TimeoutError``) when the body runs longer than ``seconds``."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def returns_or_data_error(call: Callable[[], object], path: Path, seconds: float) -> None:
    """``call()`` returns, or raises a one-line DataError naming ``path``; nothing else, and
    within ``seconds``."""
    try:
        with no_hang(seconds):
            call()
    except DataError as err:
        message = str(err)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
