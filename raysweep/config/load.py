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
# `raysweep finetune`; `raysweep run` checks it, with its `--set finetune.*` overrides, through
# `cli.preflight.check_later_stages`): the sweep itself leaves them and their overrides out.
LATER_STAGES = ("finetune",)


def read_space(path: str | Path) -> dict[str, Any]:
    """A search-space file's top-level mapping, as YAML reads it; one-line errors naming the file."""
    file = str(path)
    try:
        text = Path(path).read_text()
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
    return raw


def later_stage(override: str) -> str | None:
    """The later stage whose section an override sets (`finetune` for `finetune.epochs=3`), None for
    the sweep's own keys: the sweep leaves those to the stage that reads them."""
    head = override.partition("=")[0].strip().split(".")[0]
    return head if head in LATER_STAGES else None


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read, override and validate a search-space YAML file (a later stage's section and its
    overrides are that stage's to check)."""
    file = str(path)
    raw = read_space(path)
    try:
        sweep = {k: v for k, v in raw.items() if k not in LATER_STAGES}
        own = [o for o in overrides if later_stage(o) is None]
        return spec_from_dict(apply_overrides(sweep, own, file=file), file=file)
    except RecursionError:  # copying or quoting a value nested thousands deep
        raise SpecError("expected a search space, got lists or mappings nested too deeply", file=file) from None


def spec_from_dict(raw: Mapping[str, Any], *, file: str = "<dict>") -> SweepSpec:
    try:
        return build(SweepSpec, raw, "")
    except SpecError as err:
        raise err.located(file=file) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...], *, file: str,
                    sections: Mapping[str, type] | None = None) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (value parsed as YAML) onto a copy of the raw mapping. Each dotted
    key is checked against `SweepSpec`'s fields, or, below a later stage's top-level section, against
    the dataclass `sections` gives for it (`{"finetune": FinetuneSpec}`, passed by that stage, so
    that this layer imports none of it)."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"expected --set KEY=VALUE, got {item!r}", file=file)
        key, _, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not all(parts):
            raise SpecError(f"expected a dotted key such as optim.momentum, got {key!r}", file=file)
        try:
            value = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, RecursionError):  # not YAML: the text itself, checked as a string
            value = text
        _check_override_path(parts, key, file, sections or {})
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


def _check_override_path(parts: list[str], key: str, file: str, sections: Mapping[str, type]) -> None:
    cls: Any = SweepSpec
    if parts[0] in LATER_STAGES:
        if parts[0] not in sections:
            raise SpecError(f"expected a key of the sweep, got one of the {parts[0]}: section, which "
                            f"`raysweep {parts[0]}` reads", file=file, key=key)
        cls = sections[parts[0]]
    for depth, part in enumerate(parts):
        if depth == 0 and part in sections:
            continue
        if not dataclasses.is_dataclass(cls):
            raise SpecError(f"{'.'.join(parts[:depth])} is not a section, cannot set {part!r}", file=file, key=key)
        hints = typing.get_type_hints(cls)
        if part not in hints:
            names = [f.name for f in dataclasses.fields(cls)]
            raise SpecError(f"unknown key; expected one of {names}", file=file, key=key)
        cls = _optional_section(hints[part])


def _optional_section(tp: Any) -> Any:
    """`TpuSpec | None` (or a section among other forms) -> TpuSpec, so that `--set resources.tpu.topology=2x2x2` reaches inside it."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        # `SchedulerSpec | SchedulerName | None`: the one section among the forms
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        if len(inner) == 1:
            return inner[0]
    return tp
