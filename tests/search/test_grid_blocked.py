"""The searcher says when the LR grid cut its search short: a cell whose rule wanted an LR beyond
lr.high or lr.low and settled at that end (issue 16, item 6)."""

from __future__ import annotations

import math

from raysweep.core.space import Cell
from raysweep.search import make_searcher
from raysweep.search._prior import Bound, PriorRule
from raysweep.search.simulate import simulate
from raysweep.search.testing import LRS, planted, toy_lattice

LAT = toy_lattice(2, 2)  # grid LRS: 0.025 .. 3.2, top index 7; the start 1.6 is index 6
TOP = len(LRS) - 1


def test_best_lr_above_lr_high_blocks_the_first_cell_high_and_every_cell_it_bounds() -> None:
    # the optimum sits two steps above the grid's top everywhere: the first cell steps up to 3.2 and stops
    s = make_searcher("monotone", LAT)
    r = simulate(s, planted(LAT, lambda c: TOP + 2), concurrency=2)
    assert set(r.settled.values()) == {3.2}
    # every cell's bound was the clipped top, so each one's optimum may lie above lr.high too
    assert s.blocked() == {Cell(0, 0): "high", Cell(0, 1): "high", Cell(1, 0): "high", Cell(1, 1): "high"}


def test_an_optimum_inside_the_grid_blocks_nothing() -> None:
    s = make_searcher("monotone", LAT)
    r = simulate(s, planted(LAT, lambda c: 5 - c.m - c.e), concurrency=2)
    assert r.settled[Cell(0, 0)] == LRS[5]
    assert s.blocked() == {}


def test_an_optimum_at_the_top_but_not_beyond_is_still_reported_where_the_rule_wanted_more() -> None:
    # best exactly at 3.2: the first cell's rule would try 6.4 to bracket it, so the cell says "high"
    s = make_searcher("monotone", LAT)
    simulate(s, planted(LAT, lambda c: TOP if c == Cell(0, 0) else 4), concurrency=2)
    assert s.blocked() == {Cell(0, 0): "high"}


def test_best_lr_below_lr_low_blocks_low() -> None:
    lat = toy_lattice(1, 2, lrs=LRS[:3])  # 0.025, 0.05, 0.1; start 0.1 (index 2)
    s = make_searcher("monotone", lat, start_lr=0.1)
    r = simulate(s, planted(lat, lambda c: -2), concurrency=2)
    assert set(r.settled.values()) == {0.025}
    # the first cell stepped down to the grid's floor; the second's opening (bound - 1 step) fell below it
    assert s.blocked() == {Cell(0, 0): "low", Cell(0, 1): "low"}


def test_blocked_survives_a_new_searcher_over_the_same_study(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    s = make_searcher("monotone", LAT, storage=storage, study_name="edge")
    simulate(s, planted(LAT, lambda c: TOP + 2), concurrency=2)
    again = make_searcher("monotone", LAT, storage=storage, study_name="edge")
    assert again.blocked() == s.blocked() != {}


def test_per_cell_searchers_report_nothing() -> None:
    s = make_searcher("random", LAT, trials_per_cell=2)
    simulate(s, planted(LAT, lambda c: TOP + 2), concurrency=2)
    assert s.blocked() == {}


def test_rule_blocked_cases() -> None:
    rule = PriorRule(LRS, start=6)
    inf = math.inf
    assert rule.blocked(None, {6: 1.0, 5: 2.0, 7: 0.5}) == "high"  # first cell: top won
    assert rule.blocked(None, {6: 1.0, 5: 0.5, 4: 0.9}) is None  # bracketed inside the grid
    assert rule.blocked(None, {0: 0.5, 1: 0.9}) == "low"
    assert rule.blocked(None, {0: inf, 1: inf}) == "low"  # everything diverged down to the floor
    assert rule.blocked(Bound(0, "a"), {0: 1.0}) == "low"  # the opening wanted bound - 1 step
    assert rule.blocked(Bound(1, "a"), {1: 1.0, 0: 0.5}) is None  # monotone does not step below its opening
    assert rule.blocked(Bound(TOP, "a"), {TOP: 0.5, TOP - 1: 1.0}) is None  # a bound the rule trusts
    assert rule.blocked(Bound(TOP, "a", clipped=True), {TOP: 0.5, TOP - 1: 1.0}) == "high"
    assert PriorRule(LRS, 6, "verify").blocked(Bound(TOP, "a"), {TOP: 0.5, TOP - 1: 1.0}) == "high"
    assert PriorRule(LRS, 6, "bracket").blocked(Bound(1, "a"), {1: 1.0, 0: 0.5}) == "low"
