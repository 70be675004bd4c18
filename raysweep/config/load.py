"""Reading a search-space file: YAML -> `--set` overrides -> the typed builder -> a `SweepSpec`.

The overrides are applied to the raw mapping before validation, so they are checked exactly like
the file; every error names the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from raysweep.config._build import build
from raysweep.config.spec import SweepSpec
from raysweep.core.errors import SpecError

# Top-level sections that belong to a later stage, read and checked by it (`finetune:`, by
# `raysweep finetune`; `raysweep run` checks it through `cli.preflight.load_checked`): the sweep
# itself leaves them out.
LATER_STAGES = ("finetune",)


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read, override and validate a search-space YAML file."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", file=file) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"expected valid YAML, got a syntax error{where}: {' '.join(problem.split())}",
                        file=file) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int-from-text limit)
        raise SpecError(f"expected valid YAML, got {exc}", file=file) from None
    except RecursionError:
        raise SpecError("expected a YAML file, got lists or mappings nested too deeply to read", file=file) from None
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping at the top level, got {type(raw).__name__}", file=file)
    try:
        sweep = {k: v for k, v in raw.items() if k not in LATER_STAGES}
        return spec_from_dict(apply_overrides(sweep, overrides, file=file), file=file)
    except RecursionError:  # copying or quoting a value nested thousands deep
        raise SpecError("expected a search space, got lists or mappings nested too deeply", file=file) from None


def spec_from_dict(raw: Mapping[str, Any], *, file: str = "<dict>") -> SweepSpec:
    try:
        return build(SweepSpec, raw, "")
    except SpecError as err:
        raise err.located(file=file) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...], *, file: str) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (value parsed as YAML) onto a copy of the raw mapping."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"expected --set KEY=VALUE, got {item!r}", file=file)
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise SpecError(f"expected a dotted key such as optim.momentum, got {key!r}", file=file)
        try:
            value = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, RecursionError):  # not YAML: the text itself, checked as a string
            value = text
        _check_override_path(parts, key, file)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError(f"expected a mapping to set {parts[-1]!r} in, got {child!r}", file=file, key=part)
            node = child
        node[parts[-1]] = value
    return out


def _check_override_path(parts: list[str], key: str, file: str) -> None:
    cls: Any = SweepSpec
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            raise SpecError(f"{'.'.join(parts[:depth])} is not a section, cannot set {part!r}", file=file, key=key)
        hints = typing.get_type_hints(cls)
        if part not in hints:
            names = [f.name for f in dataclasses.fields(cls)]
            raise SpecError(f"unknown key; expected one of {names}", file=file, key=key)
        cls = _optional_section(hints[part])


def _optional_section(tp: Any) -> Any:
    """`TpuSpec | None` -> TpuSpec, so that `--set resources.tpu.topology=2x2x2` reaches inside it."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return tp
