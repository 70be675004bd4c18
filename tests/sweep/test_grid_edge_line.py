"""The one line a sweep ends with when the LR grid cut its search short, and the parent run's tag."""

from __future__ import annotations

from raysweep.core.records import Tag
from raysweep.sweep.closing import grid_blocked_tag, grid_edge_line

LRS = (0.001, 0.002, 0.004, 0.008)


def test_the_line_names_the_bound_to_widen_and_its_cells() -> None:
    line = grid_edge_line({"convnext_t0@1": "high", "convnext_t0@2": "high"}, LRS)
    assert line is not None and "\n" not in line
    assert line.endswith("lr.high: raise it above 0.008 (cells convnext_t0@1, convnext_t0@2)")


def test_both_bounds_in_one_line_high_first() -> None:
    line = grid_edge_line({"a@1": "low", "b@1": "high", "c@2": "low"}, LRS)
    assert line is not None and "\n" not in line
    assert "lr.high: raise it above 0.008 (cells b@1); lr.low: lower it below 0.001 (cells a@1, c@2)" in line


def test_nothing_blocked_says_nothing() -> None:
    assert grid_edge_line({}, LRS) is None
    assert grid_blocked_tag({}) == "none"


def test_the_tag() -> None:
    assert Tag.LR_GRID_BLOCKED == "raysweep.lr_grid_blocked"
    assert grid_blocked_tag({"a@1": "low", "b@1": "high", "c@2": "low"}) == "lr.high=b@1;lr.low=a@1,c@2"
