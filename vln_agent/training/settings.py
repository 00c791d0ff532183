"""Run settings from a JSON file: one loader for every settings dataclass (training,
pretraining), with one-line errors for unknown keys and values of the wrong type."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

from envs.errors import DataError
from envs.fileio import read_json

_Settings = TypeVar("_Settings")


def load_settings(
    cls: type[_Settings], path: str | os.PathLike[str] | None, what: str, **overrides: Any
) -> _Settings:
    """``cls`` built from a JSON object in ``path`` (optional), then the non-None ``overrides``.

    ``what`` names the settings in errors ("training" -> "unknown training setting 'x'").
    A value must have its default's type: ints pass as floats, bools only as bools, lists of
    strings as tuples (converted), strings or None where the default is None.
    """
    source = path or f"{what} settings"
    values: dict[str, Any] = {}
    if path is not None:
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError(path, f"expected a JSON object of {what} settings")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in fields:
            raise DataError(source, f"unknown {what} setting {name!r}")
        default = fields[name].default
        if not _same_type(value, default):
            problem = f"{what} setting {name!r} must be like {default!r}, got {value!r}"
            raise DataError(source, problem)
        if isinstance(default, tuple):
            values[name] = tuple(value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise DataError(source, str(err)) from None


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, tuple):
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if default is None:
        return value is None or isinstance(value, str)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return type(value) is type(default)
