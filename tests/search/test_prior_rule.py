"""The prior's pure rules: who wins a cell, and what a cell tries next."""

from __future__ import annotations

import math

import pytest

from raysweep.search._prior import WAIT, Bound, PriorRule, Propose, Settle, pick_best
from raysweep.search.testing import LRS


def test_lowest_loss_wins() -> None:
    assert pick_best({0.4: 1.2, 0.8: 1.1, 1.6: 1.3}) == 0.8


def test_exact_ties_go_to_the_larger_lr() -> None:
    assert pick_best({0.4: 1.0, 0.8: 1.0}) == 0.8


def test_ties_within_the_relative_tolerance_go_to_the_larger_lr() -> None:
    losses = {0.4: 1.000, 0.8: 1.009, 1.6: 1.02}
    assert pick_best(losses, 0.0) == 0.4
    assert pick_best(losses, 0.01) == 0.8
    assert pick_best(losses, 0.05) == 1.6


def test_diverged_loses_to_any_finished_trial() -> None:
    assert pick_best({0.4: 9.0, 0.8: math.inf}) == 0.4


def test_all_diverged_picks_the_smallest_lr() -> None:
    assert pick_best({0.4: math.inf, 0.8: math.inf}) == 0.4


def test_rule_checks_its_options() -> None:
    with pytest.raises(ValueError, match="mode"):
        PriorRule(LRS, 6, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slowness >= 0"):
        PriorRule(LRS, 6, slowness=-1)


def test_monotone_step_sequence() -> None:
    rule = PriorRule(LRS, 6)
    bound = Bound(5, "m0@1")
    assert rule.step(bound, {}, set()) == Propose(5, "bound from m0@1 = 0.8")
    assert rule.step(bound, {}, {5}) == Propose(4, "bound - 1 step (slowness 1) = 0.4")
    assert rule.step(bound, {5: 1.0}, {4}) is WAIT
    assert rule.step(bound, {5: 1.0, 4: 0.9}, set()) == Settle(4)


def test_slowness_sets_how_far_below_the_bound_a_cell_looks() -> None:
    assert [i for i, _ in PriorRule(LRS, 6, slowness=2).opening(Bound(5, "x"))] == [5, 4, 3]
    assert [i for i, _ in PriorRule(LRS, 6, slowness=0).opening(Bound(5, "x"))] == [5]
    assert [i for i, _ in PriorRule(LRS, 6).opening(Bound(0, "x"))] == [0]  # the grid floor


def test_verify_adds_one_step_above_the_bound() -> None:
    assert [i for i, _ in PriorRule(LRS, 6, "verify").opening(Bound(5, "x"))] == [5, 4, 6]
    assert [i for i, _ in PriorRule(LRS, 6, "verify").opening(Bound(7, "x"))] == [7, 6]  # grid top


def test_first_cell_moves_up_while_the_top_wins() -> None:
    rule = PriorRule(LRS, 6)
    assert rule.step(None, {6: 1.0, 5: 1.1}, set()) == Propose(
        7, "first cell: highest tried won, stepping up to 3.2"
    )
    assert rule.step(None, {6: 1.0, 5: 1.1, 7: 1.2}, set()) == Settle(6)
    assert rule.step(None, {6: 1.0, 5: 1.1, 7: 0.9}, set()) == Settle(7)  # the grid top


def test_first_cell_starting_at_the_floor_tries_upward() -> None:
    rule = PriorRule(LRS, 0)
    assert [i for i, _ in rule.opening(None)] == [0]
    assert rule.step(None, {0: 1.0}, set()) == Propose(
        1, "first cell: highest tried won, stepping up to 0.05"
    )
