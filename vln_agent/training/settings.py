"""Run settings: one loader for every settings dataclass, and the command-line flags made
from the same dataclass.

A settings dataclass documents each field with a ``#:`` comment above it (a comment above
a run of fields documents all of them); a field whose default is itself a (frozen)
dataclass is a section, e.g. the model's architecture inside the run settings. A JSON
recipe holds the same structure (``{"iterations": 20, "model": {"hidden_size": 32}}``);
a section's keys may also stand at the top level (flat recipes, flags).

Command-line flags are generated from the fields (:func:`add_settings_flags`:
``batch_size`` -> ``--batch-size``, the ``#:`` comment as help, the default shown) rather
than listed by hand. argparse is kept rather than tyro or jsonargparse: the flags keep
their dashed names inside ``clipvil``'s subcommands, and the ``#:`` comments the
dataclasses already carry become the help text.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import os
import textwrap
from pathlib import Path
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
        values = _route(cls, data, source, what)
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in _route(cls, given, source, what).items():
        if isinstance(value, dict):
            values[name] = {**values.get(name, {}), **value}
        else:
            values[name] = value
    try:
        return _build(cls, values, source, what)
    except (TypeError, ValueError) as err:
        raise DataError(source, str(err)) from None


def _sections(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are nested settings dataclasses, by name."""
    return {
        f.name: type(f.default)
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(f.default)
    }


def _route(cls: type, values: dict[str, Any], source: Any, what: str) -> dict[str, Any]:
    """``values`` with each section's keys gathered under the section's name."""
    names = {f.name for f in dataclasses.fields(cls)}
    sections = _sections(cls)
    routed: dict[str, Any] = {}
    for name, value in values.items():
        if name in sections:
            if not isinstance(value, dict):
                raise DataError(source, f"{what} setting {name!r} must be a JSON object")
            routed.setdefault(name, {}).update(value)
        elif name in names:
            routed[name] = value
        else:
            owner = next(
                (s for s, sub in sections.items() if name in {f.name for f in _fields(sub)}),
                None,
            )
            if owner is None:
                raise DataError(source, f"unknown {what} setting {name!r}")
            routed.setdefault(owner, {})[name] = value
    return routed


def _build(cls: type[_Settings], values: dict[str, Any], source: Any, what: str) -> _Settings:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    sections = _sections(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            raise DataError(source, f"unknown {what} setting {name!r}")
        default = fields[name].default
        if name in sections:
            kwargs[name] = dataclasses.replace(
                default, **_checked(sections[name], value, source, what)
            )
            continue
        kwargs.update(_checked(cls, {name: value}, source, what))
    return cls(**kwargs)


def _checked(cls: type, values: dict[str, Any], source: Any, what: str) -> dict[str, Any]:
    """``values`` type-checked against the defaults of ``cls`` (lists become tuples)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for name, value in values.items():
        if name not in fields:
            raise DataError(source, f"unknown {what} setting {name!r}")
        default = fields[name].default
        if not _same_type(value, default):
            problem = f"{what} setting {name!r} must be like {default!r}, got {value!r}"
            raise DataError(source, problem)
        checked[name] = tuple(value) if isinstance(default, tuple) else value
    return checked


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


# --------------------------------------------------------------------------- flags
def _fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of a dataclass (shared down a run of fields)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        lines = textwrap.dedent(inspect.getsource(klass)).splitlines()
        body = ast.parse("\n".join(lines)).body[0]
        previous = ""
        for node in body.body:  # type: ignore[attr-defined]
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            comment, row = [], node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#:"):
                comment.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            previous = " ".join(comment) or previous
            docs[node.target.id] = previous
    return docs


def settings_fields(cls: type) -> list[tuple[str, dataclasses.Field, str]]:
    """``(name, field, doc)`` of every leaf setting of ``cls``, sections flattened."""
    docs, sections = field_docs(cls), _sections(cls)
    leaves = []
    for f in dataclasses.fields(cls):
        if f.name in sections:
            leaves.extend(settings_fields(sections[f.name]))
        elif f.init:
            leaves.append((f.name, f, docs.get(f.name, "")))
    return leaves


def add_settings_flags(
    parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()
) -> None:
    """A ``--flag`` per field of ``cls`` (sections included); its value (None when not
    given) overrides the recipe's. ``metadata={"choices": ..., "flags": ("--lr",)}`` on a
    field adds choices or extra spellings; fields in ``exclude`` get no flag."""
    group = parser.add_argument_group(
        f"settings of the run ({cls.__name__}; a --config file sets them too)"
    )
    for name, f, doc in settings_fields(cls):
        if name in exclude or f.metadata.get("derived"):
            continue
        default = f.default
        flags = [f"--{name.replace('_', '-')}", *f.metadata.get("flags", ())]
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs.update(nargs="+", metavar="NAME")
        elif default is not None:
            kwargs["type"] = type(default)
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        shown = ",".join(default) if isinstance(default, tuple) else default
        kwargs["help"] = f"{doc} (default: {shown})".strip()
        group.add_argument(*flags, **kwargs)


def settings_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The generated flags' values (None where not given), by field name."""
    return {name: getattr(args, name, None) for name, _, _ in settings_fields(cls)}


#: The recipes that ship with clipvil (``--config NAME`` finds ``NAME.json`` here).
RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs"


def list_recipes(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    """Names of the recipes shipped in ``recipe_dir`` (default: vln_agent's)."""
    return sorted(p.stem for p in recipe_dir.glob("*.json"))


def recipe_path(
    name_or_path: str | os.PathLike[str] | None, recipe_dir: Path = RECIPE_DIR
) -> Path | None:
    """A ``--config`` value as a file: an existing path, or a recipe's name in ``recipe_dir``."""
    if name_or_path is None:
        return None
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = recipe_dir / (path.name if path.suffix == ".json" else f"{path.name}.json")
    return shipped if shipped.is_file() else path


def add_run_flags(
    parser: argparse.ArgumentParser, recipe_dir: Path = RECIPE_DIR
) -> argparse._MutuallyExclusiveGroup:
    """The flags every training command takes the same way (``--seed`` and ``--device``
    come with the settings); ``--config`` names the recipes of ``recipe_dir``. Returns the
    group of ``--resume``, for other ways to resume."""
    package = recipe_dir.parent.name
    parser.add_argument(
        "--config",
        type=str,
        metavar="FILE|NAME",
        help=f"JSON recipe of settings: a file, or the name of a recipe shipped in "
        f"{package}/configs ({', '.join(list_recipes(recipe_dir))})",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", action="store_true", help="continue exactly from RUN_DIR/latest.pt"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return resume
