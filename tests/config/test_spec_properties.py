"""Property tests of the spec loader: any YAML mapping, and any mutation of the demo search space,
either loads to a `SweepSpec` or raises `SpecError` with a one-line message naming the file. Never
anything else: no OverflowError, no TypeError, no traceback."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysweep.config import MAX_LR_POINTS, SweepSpec, load_spec
from raysweep.core.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _dotted_fields(cls: type = SweepSpec, prefix: str = "") -> list[str]:
    """Every key a search space may hold, dotted (`optim.momentum`), sections included."""
    out = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        out.append(name)
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out += _dotted_fields(tp, name + ".")  # type: ignore[arg-type]
    return out


FIELDS = _dotted_fields()
EXTREME_NUMBERS = [0, -1, 1, 2**31, 2**32, 2**63, 2**64, 10**30, -(10**30), 10**400, 1e308, -1e308, 5e-324,
                   1e-308, math.inf, -math.inf, math.nan, 0.0, -0.0, 1.01, 0.999999]
PLAUSIBLE = ["mnist5k", "image_folder", "digits", "nfnet_cpu", "nfnet_t0", "nfnet_t1", "grid", "monotone", "tpe",
             "cpu", "cuda", "xla", "1e-5", "1e308", "inf", ".nan", "", " ", "a\nb", "null", "sqlite:///x.db",
             "http://127.0.0.1:1", "postgresql://u:pw@h/db", "../x", "x" * 300]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EXTREME_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(PLAUSIBLE),
)
keys = st.one_of(st.sampled_from([f.rsplit(".", 1)[-1] for f in FIELDS]), st.text(max_size=8), st.integers(-3, 3))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


def _check(path: Path, data: Any, overrides: tuple[str, ...] = ()) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        spec = load_spec(path, overrides)
    except SpecError as err:
        msg = str(err)
        assert "\n" not in msg and "\r" not in msg, msg
        assert msg.startswith(str(path)), msg
        assert len(msg) < 1000, msg  # a quoted value is cut, the line stays readable
        return
    assert isinstance(spec, SweepSpec)
    grid = spec.lr_grid()  # what a loaded spec promises the searchers
    assert 1 <= len(grid) <= MAX_LR_POINTS and all(0 < g < math.inf for g in grid), grid
    assert list(grid) == sorted(set(grid))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("specs") / "space.yaml"


@SETTINGS
@given(data=st.dictionaries(keys, values, max_size=8))
def test_any_mapping_loads_or_is_one_spec_error(scratch: Path, data: dict[Any, Any]) -> None:
    _check(scratch, data)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS + ["bogus", "optim.bogus"]), st.one_of(values, st.just(...))),
                      min_size=1, max_size=4))
def test_mutations_of_the_demo_load_or_are_one_spec_error(scratch: Path, edits: list[tuple[str, Any]]) -> None:
    data = yaml.safe_load(yaml.safe_dump(DEMO))
    for dotted, value in edits:
        if value is ...:  # delete the key where it exists
            *parents, leaf = dotted.split(".")
            node: Any = data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        else:
            _set(data, dotted, value)
    _check(scratch, data)


@SETTINGS
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(FIELDS + ["bogus", "lr.base.x", ""]),
              st.one_of(st.text(max_size=12), st.sampled_from(PLAUSIBLE), st.sampled_from(EXTREME_NUMBERS).map(str))),
    st.text(max_size=16)), min_size=1, max_size=3))
def test_any_set_override_loads_or_is_one_spec_error(scratch: Path, overrides: list[str]) -> None:
    _check(scratch, yaml.safe_load(yaml.safe_dump(DEMO)), tuple(overrides))


def _field_type(dotted: str) -> Any:
    cls: Any = SweepSpec
    for part in dotted.split("."):
        cls = typing.get_type_hints(cls)[part]
    return cls


NUMERIC_FIELDS = [f for f in FIELDS if _field_type(f) in (int, float, int | None, float | None)] + \
                 ["epochs[0]", "epochs[1]"]


@pytest.mark.parametrize("dotted", NUMERIC_FIELDS)
def test_every_numeric_field_at_every_extreme(dotted: str) -> None:
    """Exhaustive where random draws are thin: each number field of the demo at each extreme value
    (1e308 in lr.high was a traceback), through the same builder `load_spec` uses."""
    from raysweep.config import spec_from_dict

    for extreme in EXTREME_NUMBERS:
        data = yaml.safe_load(yaml.safe_dump(DEMO))
        if dotted.startswith("epochs["):
            data["epochs"][int(dotted[7])] = extreme
        else:
            _set(data, dotted, extreme)
        try:
            spec = spec_from_dict(data, file="demo.yaml")
        except SpecError as err:
            assert "\n" not in str(err) and str(err).startswith("demo.yaml: "), err
            continue
        grid = spec.lr_grid()
        assert 1 <= len(grid) <= MAX_LR_POINTS and all(0 < g < math.inf for g in grid), (dotted, extreme, grid)


def test_the_loader_catches_the_cases_hypothesis_found_once() -> None:
    """Regressions found by the properties above, kept as plain examples."""
    from raysweep.config import LrSpec

    assert LrSpec(base=1.0, factor=1e308, low=1e-308, high=1e308).grid() == (1e-308, 1.0, 1e308)
    assert LrSpec(base=0.4, factor=2.0, low=0.025, high=1e308).grid()[0] == 0.025  # no OverflowError
