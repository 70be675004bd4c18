"""Limits and small checks shared by every section of the config: names, seeds, positive numbers,
and how a value is quoted in a one-line error. Plain Python: no framework, no other raysweep layer."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from raysweep.core.errors import SpecError

MAX_LR_POINTS = 64  # a grid longer than this is a typo in factor/low/high, not a sweep
MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 10_000.0  # a budget past this is a typo (1e308), and would plan an endless list of eval steps
MAX_NAME_LEN = 100  # the name becomes folder names (Ray Tune's experiment folder) and MLflow run names
SEED_RANGE = 2**32  # seeds feed torch, NumPy's SeedSequence and Optuna's RandomState: [0, 2**32) suits all


_SHOW_CHARS = 120  # a value quoted in an error is cut here: the message stays one readable line


def _check_plain(value: Any, key: str) -> None:
    """JSON-like values only, so that the config crosses processes as a plain dict unchanged."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got {_show(value)}", key=key)
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
        return
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        for k, v in value.items():
            _check_plain(v, _join(key, k))
        return
    raise SpecError(f"expected a number, string, boolean, list or mapping, got {_show(value)}", key=key)


def _check_name(value: str, key: str) -> None:
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value) \
            or len(value) > MAX_NAME_LEN or value.startswith("."):
        raise SpecError(f"expected a name of 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.' (not first), "
                        f"got {_show(value)}", key=key)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    try:
        text = repr(value)
    except ValueError:  # an integer too long for repr (Python caps int -> str at 4300 digits)
        text = f"an integer of more than {sys.get_int_max_str_digits()} digits"
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + "..."
    return f"{type(value).__name__} {text}"


def _key_name(key: Any) -> str:
    """A mapping key as it appears in a dotted path: plain names as they are, anything else quoted."""
    if isinstance(key, str) and key and key.isprintable() and not any(c in key for c in " .[]"):
        return key
    text = repr(key)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _seed(value: int, key: str) -> None:
    if not 0 <= value < SEED_RANGE:
        raise SpecError(f"expected a seed in [0, 2**32), got {_show(value)}", key=key)


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise SpecError(f"expected a number > 0, got {value!r}", key=key)


def _non_empty(value: tuple[Any, ...], key: str) -> None:
    if not value:
        raise SpecError("expected a non-empty list, got []", key=key)
