"""search.warm_start, below the sweep: the forecast (held at the fitted box's edge), the opening rule,
the sampler that starts every cell at once, and the plan the study keeps for a resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raysweep.core.space import Lattice
from raysweep.core.warm import WarmPlan, WarmStart
from raysweep.search import make_searcher
from raysweep.search._prior import Bound, Prediction, PriorRule, Propose
from raysweep.search.base import FINISHED, Outcome, Proposal

LRS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def trend(**over: object) -> WarmStart:
    kw: dict = {"source": "earlier", "c": math.log(0.4), "p": -0.25, "q": -0.5,
                "params": (1e4, 4e4), "epochs": (0.5, 2.0), "n_cells": 6}
    kw.update(over)
    return WarmStart(**kw)


def test_forecast_follows_the_line_inside_the_box_and_is_held_at_its_edge_outside() -> None:
    w = trend()
    assert w.lr(1e4, 1.0) == pytest.approx(0.4 * 1e4**-0.25)
    assert w.lr(2e4, 2.0) == pytest.approx(0.4 * 2e4**-0.25 * 2**-0.5)
    assert w.lr(1e6, 16.0) == pytest.approx(w.lr(4e4, 2.0))  # both beyond: the box's far corner
    assert w.lr(1e2, 0.1) == pytest.approx(w.lr(1e4, 0.5))
    plan = w.plan({"a@1": (1e4, 1.0), "b@8": (4e4, 8.0)})
    assert set(plan.held) == {"b@8"}
    assert plan.lrs["b@8"] == pytest.approx(w.lr(4e4, 2.0))
    assert plan.held["b@8"] == pytest.approx(w.line(4e4, 8.0))  # where the extrapolated line points


@pytest.mark.parametrize("bad", [{"c": math.nan}, {"q": math.inf}, {"params": (0.0, 1.0)}, {"epochs": (2.0, 1.0)}])
def test_a_broken_trend_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        trend(**bad)


@given(st.floats(-6, 6), st.floats(-1, 1), st.floats(-1, 1), st.floats(1e3, 1e7), st.floats(0.01, 100))
def test_the_forecast_never_leaves_the_range_the_box_spans(c: float, p: float, q: float, n: float, e: float) -> None:
    w = trend(c=c, p=p, q=q)
    corners = [w.lr(a, b) for a in w.params for b in w.epochs]
    assert min(corners) * (1 - 1e-9) <= w.lr(n, e) <= max(corners) * (1 + 1e-9)


def test_plan_survives_the_study_attribute_round_trip() -> None:
    plan = trend().plan({"a@1": (1e4, 1.0), "b@8": (4e4, 8.0)})
    again = WarmPlan.from_attr(plan.to_attr())
    assert again.lrs == pytest.approx(plan.lrs) and again.held == pytest.approx(plan.held)
    assert again.source == plan.source


def _opening(x: float, toward: float | None = None) -> list[int]:
    rule = PriorRule(LRS, start=3)
    return [i for i, _ in rule.opening(Bound(0, "ignored"), Prediction(x, "test", warm=True, toward=toward))]


def test_warm_opening_one_trial_near_a_grid_point_two_between_them() -> None:
    assert _opening(2.0) == [2]
    assert _opening(2.3) == [2]  # within TREND_CONFIDENCE (0.35) of grid point 2
    assert _opening(2.45) == [2, 3]  # leans up: the neighbour above
    assert _opening(2.6) == [3, 2]  # nearest is 3, leans down
    assert _opening(-3.0) == [0]  # below the grid: its lowest LR
    assert _opening(40.0) == [5]  # above: its highest


def test_outside_the_box_the_held_forecast_adds_one_step_toward_the_extrapolated_line() -> None:
    assert _opening(3.0, toward=0.4) == [3, 2]  # the line points 3 steps down: one step that way
    assert _opening(3.0, toward=4.6) == [3, 4]
    assert _opening(3.0, toward=3.2) == [3]  # the line rounds to the same point: one trial
    assert _opening(3.45, toward=3.2) == [3, 4]  # same point, but the forecast sits between two
    assert _opening(0.0, toward=-5.0) == [0]  # the line leaves the grid: nothing below its lowest LR


def lattice() -> Lattice:
    return Lattice(("m0", "m1"), (0.5, 1.0, 4.0), LRS)


def warm_plan() -> WarmPlan:
    n = {"m0": 1e4, "m1": 3e4}
    # 0.4 at (1e4, 1 epoch); 0.2 at the far corner the 4-epoch cells are held at
    return trend(c=math.log(0.4 * 1e4**0.25)).plan({f"{m}@{e:g}": (n[m], e) for m in n for e in (0.5, 1.0, 4.0)})


def test_every_cell_starts_at_once_from_its_forecast_and_settles_on_its_trials() -> None:
    searcher = make_searcher("monotone", lattice(), start_lr=0.4, warm_start=warm_plan())
    plan = warm_plan()
    started: list[tuple[str, Proposal]] = []
    while isinstance(p := searcher.suggest(str(len(started))), Proposal):
        started.append((str(len(started)), p))
    # nothing finished yet, and yet every cell has its opening trials running: no cell waits on another
    assert {lattice().name(p.cell) for _, p in started} == set(plan.lrs)
    for _, p in started:
        x = min(len(LRS) - 1.0, max(0.0, plan.index(lattice().name(p.cell), LRS)))
        assert abs(math.log2(p.lr / LRS[0]) - x) < 1.0 + 1e-9  # one of the two grid points around it
        assert p.reason.startswith("warm start")
    for trial_id, p in started:  # a smooth loss with its optimum at 0.2
        searcher.on_trial_complete(trial_id, Outcome(1.0 + math.log(p.lr / 0.2) ** 2))
    assert searcher.suggest("again") is FINISHED
    per_cell = len(started) / lattice().n_cells()
    assert 1.0 <= per_cell <= 2.0
    settled = searcher.settled()
    for cell, lr in settled.items():  # the better of the tried ones
        tried = [p.lr for _, p in started if p.cell == cell]
        assert lr == min(tried, key=lambda v: abs(math.log(v / 0.2)))


def test_a_resumed_study_keeps_the_warm_start_it_was_created_with(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = make_searcher("monotone", lattice(), start_lr=0.4, storage=storage, study_name="s", warm_start=warm_plan())
    first_lr = first.suggest("0")
    assert isinstance(first_lr, Proposal)
    other = WarmPlan("elsewhere", {k: 1.6 for k in warm_plan().lrs})
    again = make_searcher("monotone", lattice(), start_lr=0.4, storage=storage, study_name="s", warm_start=other)
    assert again.warm_start.source == "earlier"
    plain = make_searcher("monotone", lattice(), start_lr=0.4, storage=storage, study_name="s")
    assert plain.warm_start is not None and plain.warm_start.lrs == pytest.approx(warm_plan().lrs)


def test_a_plan_without_every_cell_is_refused() -> None:
    plan = WarmPlan("earlier", {"m0@0.5": 0.2})
    with pytest.raises(ValueError, match="no forecast for cells"):
        make_searcher("monotone", lattice(), start_lr=0.4, warm_start=plan)


def test_without_a_warm_start_cells_still_wait_for_their_predecessors() -> None:
    searcher = make_searcher("monotone", lattice(), start_lr=0.4)
    started = []
    while isinstance(p := searcher.suggest(str(len(started))), Proposal):
        started.append(p)
    assert {p.cell for p in started} == {lattice().cells().__next__()}
    assert isinstance(PriorRule(LRS, 3).step(None, {}, set()), Propose)
