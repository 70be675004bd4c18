"""A small typed builder: dataclass fields drive the checks, so defaults and types live in one place.

`build(cls, mapping, key)` refuses unknown keys, coerces each value to its field's type (naming
the dotted key and what was expected) and runs the class's own `validate()`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from raysweep.config._checks import _check_plain, _join, _key_name, _show
from raysweep.core.errors import SpecError


def build(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"expected a mapping, got {_show(data)}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise SpecError(f"unknown key; expected one of {list(fields)}", key=_join(key, _key_name(unknown[0])))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError("required key is missing", key=sub)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except SpecError as err:
            raise err.located(key_prefix=key or None) from None
    return obj


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, key)
        # a choice of forms (`Literal["auto"] | float`): the first that takes the value
        wants = []
        for alt in inner:
            if dataclasses.is_dataclass(alt) and isinstance(value, Mapping):  # a section: its own error, its key
                return _coerce(alt, value, key)
            try:
                return _coerce(alt, value, key)
            except SpecError as err:
                wants.append(err.detail.removeprefix("expected ").split(", got ")[0])
        raise SpecError(f"expected {' or '.join(wants)}, got {_show(value)}", key=key)
    if origin is Literal:
        if value not in args:
            raise SpecError(f"expected one of {list(args)}, got {_show(value)}", key=key)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(f"expected a list, got {_show(value)}", key=key)
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)  # type: ignore[arg-type]
    if origin is dict:  # free-form arguments (a timm model's kwargs): a mapping of plain YAML values
        if not isinstance(value, Mapping):
            raise SpecError(f"expected a mapping, got {_show(value)}", key=key)
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"expected string keys, got {_show(k)}", key=key)
            _check_plain(v, _join(key, k))
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"expected true or false, got {_show(value)}", key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"expected an integer, got {_show(value)}", key=key)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"expected a number, got {_show(value)}", key=key)
        try:
            number = float(value)
        except OverflowError:  # an integer past 1.8e308
            number = math.inf
        if not math.isfinite(number):
            raise SpecError(f"expected a finite number, got {_show(value)}", key=key)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"expected a string, got {_show(value)}", key=key)
        return value
    raise AssertionError(f"unsupported field type {tp!r} at {key}")  # an internal invariant
