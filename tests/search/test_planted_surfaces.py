"""Searchers against planted loss surfaces whose optimum in every cell is known.

Lattice: 3 rungs x 4 budgets, the default LR grid 0.025 ... 3.2 (indices 0..7), start 1.6 (index 6).
"""

from __future__ import annotations

import collections
import math

import pytest

from raysweep.core.space import Cell
from raysweep.search import Outcome, make_searcher
from raysweep.search.simulate import Evaluate, SimRun, simulate
from raysweep.search.testing import planted, toy_lattice

LAT = toy_lattice(3, 4)
CELLS = list(LAT.cells())


def run(name: str, optimum, concurrency: int = 2, **kw) -> SimRun:  # type: ignore[no-untyped-def]
    searcher = make_searcher(name, LAT, study_name=name, **kw)
    return simulate(searcher, planted(LAT, optimum, **kw.pop("surface", {})), concurrency=concurrency)


def counts(r: SimRun) -> list[int]:
    c = collections.Counter(t.proposal.cell for t in r.trials)
    return [c[cell] for cell in CELLS]


def settled_index(r: SimRun) -> dict[Cell, int]:
    return {c: LAT.lr_index(lr) for c, lr in r.settled.items()}


def obeys(c: Cell) -> int:  # falls by at most one step per predecessor
    return 6 - (c.m + c.e) // 2


def rises(c: Cell) -> int:  # the optimum rises with model size: 0.4, 0.8, 1.6
    return 4 + c.m


def falls_fast(c: Cell) -> int:  # two steps per budget: 1.6, 0.4, 0.1, 0.025
    return 6 - 2 * c.e


# (1) a surface that obeys the prior


@pytest.mark.parametrize("name", ["monotone", "bracket", "verify"])
def test_obeying_surface_settles_every_cell_on_the_planted_optimum(name: str) -> None:
    r = run(name, obeys)
    assert settled_index(r) == {c: obeys(c) for c in CELLS}


def test_monotone_uses_two_trials_per_cell_after_the_first() -> None:
    r = run("monotone", obeys)
    assert counts(r) == [3] + [2] * 11  # the first cell: 1.6 and 0.8, then 3.2 because 1.6 won
    first = [t.proposal for t in r.trials if t.proposal.cell == Cell(0, 0)]
    assert sorted(p.lr for p in first) == [0.8, 1.6, 3.2]


def test_first_cell_brackets_down_when_the_lower_start_wins() -> None:
    r = run("monotone", lambda c: 4)
    first = [t.proposal for t in r.trials if t.proposal.cell == Cell(0, 0)]
    assert [p.lr for p in first] == [1.6, 0.8, 0.4, 0.2]
    assert first[2].reason == "first cell: lowest tried won, stepping down to 0.4"
    assert r.settled[Cell(0, 0)] == 0.4


def test_opening_trials_run_in_parallel_and_cells_run_as_a_wavefront() -> None:
    r = run("monotone", obeys, concurrency=4)
    starts = sorted(r.trials, key=lambda t: t.start)
    assert {t.proposal.lr for t in starts[:2]} == {1.6, 0.8} and starts[1].start == 0.0
    assert r.max_in_flight == 4  # (0,1) and (1,0) run side by side once (0,0) settles


def test_reasons_name_the_bound_and_its_source() -> None:
    r = run("monotone", obeys)
    reasons = {(t.proposal.cell, t.proposal.lr): t.proposal.reason for t in r.trials}
    assert reasons[(Cell(0, 0), 1.6)] == "first cell: start 1.6"
    assert reasons[(Cell(0, 3), 0.8)] == "bound from m0@1 = 0.8"
    assert reasons[(Cell(0, 3), 0.4)] == "bound - 1 step (slowness 1) = 0.4"


# (2) the optimum rises with model size: the bound caps it


def test_rising_optimum_is_capped_by_the_bound() -> None:
    for name in ("monotone", "bracket"):
        r = run(name, rises)
        assert settled_index(r) == {c: 4 for c in CELLS}, name
        assert counts(r) == [4] + [2] * 11, name  # bracket never steps down: the bound always wins


def test_verify_catches_an_optimum_one_step_above_the_bound() -> None:
    r = run("verify", rises)
    assert settled_index(r) == {c: rises(c) for c in CELLS}
    assert counts(r) == [4] + [3] * 11


# (3) the optimum falls two steps per budget: monotone misses, bracket follows


def test_monotone_misses_an_optimum_two_steps_below_the_bound() -> None:
    r = run("monotone", falls_fast)
    assert [settled_index(r)[Cell(0, e)] for e in range(4)] == [6, 5, 4, 3]  # bound - 1 each time
    assert sum(settled_index(r)[c] == falls_fast(c) for c in CELLS) == 6
    assert len(r.trials) == 25


def test_bracket_steps_down_to_an_optimum_below_the_bound() -> None:
    r = run("bracket", falls_fast)
    assert settled_index(r) == {c: falls_fast(c) for c in CELLS}
    assert counts(r) == [3, 4, 4, 3, 2, 2, 2, 1, 2, 2, 2, 1]
    steps = [t.proposal.reason for t in r.trials if t.proposal.cell == Cell(0, 1)]
    assert steps[2:] == [
        "bracket: lowest tried won, stepping down to 0.4",
        "bracket: lowest tried won, stepping down to 0.2",
    ]


# (4) divergence above a threshold


def test_first_cell_brackets_down_through_divergence() -> None:
    r = run("monotone", lambda c: 6, surface={"diverge_from": 5})  # 0.8 and up diverge
    first = [t for t in r.trials if t.proposal.cell == Cell(0, 0)]
    assert [t.proposal.lr for t in first] == [1.6, 0.8, 0.4, 0.2]
    assert [t.outcome.status for t in first] == ["diverged", "diverged", "ok", "ok"]
    assert first[2].proposal.reason == "every tried LR diverged, stepping down to 0.4"
    assert set(r.settled.values()) == {0.4}
    assert counts(r) == [4] + [2] * 11


def test_a_cell_whose_opening_diverges_keeps_stepping_down() -> None:
    def limit(c: Cell) -> int | None:
        return 3 if c.m == 2 else None  # the largest rung diverges from 0.2 up

    r = run("monotone", lambda c: 4, surface={"diverge_from": limit})
    assert r.settled[Cell(2, 0)] == 0.1
    assert [t.proposal.lr for t in r.trials if t.proposal.cell == Cell(2, 0)] == [0.4, 0.2, 0.1]


# ties


def test_ties_go_to_the_larger_lr() -> None:
    r = run("monotone", obeys, surface={"curvature": 0.0})
    assert set(r.settled.values()) == {3.2}  # the first cell climbs to the grid top, every cell keeps it


def test_tie_tolerance_is_relative() -> None:
    # one step off costs 0.05 (under 3 % of a loss of 2.3-3), two steps 0.2 (over 6 %)
    r = run("monotone", lambda c: 5, tie_tolerance=0.03)
    assert set(r.settled.values()) == {1.6}
    r = run("monotone", lambda c: 5, tie_tolerance=0.0)
    assert set(r.settled.values()) == {0.8}


# trend mode


def test_trend_settles_an_obeying_surface_with_fewer_trials() -> None:
    r = run("trend", obeys)
    mono = run("monotone", obeys)
    assert len(r.trials) < len(mono.trials)
    assert r.trials[3].proposal.reason.startswith("trend: ")


# failed trials (an exception, OOM, preemption): retried, never read as a loss


def failing(evaluate: Evaluate, cell: Cell, index: int, times: int, status: str = "failed") -> Evaluate:
    """`evaluate`, except that the first `times` attempts at (`cell`, grid index) end in `status`."""
    left = [times]

    def wrapped(c: Cell, lr: float) -> Outcome:
        if (c, LAT.lr_index(lr)) == (cell, index) and left[0] > 0:
            left[0] -= 1
            return Outcome(math.inf, "failed" if status == "failed" else "diverged")
        return evaluate(c, lr)

    return wrapped


FLAKY = Cell(1, 1)  # bound 1.6 from both predecessors, planted optimum 0.8 (index 5) under `obeys`


def test_a_failure_at_the_planted_optimum_is_retried_and_the_cell_still_settles_there() -> None:
    r = simulate(make_searcher("monotone", LAT), failing(planted(LAT, obeys), FLAKY, 5, 1), concurrency=2)
    assert settled_index(r) == {c: obeys(c) for c in CELLS}
    assert counts(r) == [3] + [2] * 4 + [3] + [2] * 6  # FLAKY: 1.6, 0.8 (failed), 0.8 again
    flaky = [t for t in r.trials if t.proposal.cell == FLAKY]
    assert [(t.proposal.lr, t.outcome.status) for t in flaky] == [(1.6, "ok"), (0.8, "failed"), (0.8, "ok")]
    assert flaky[2].proposal.reason == "retry after failure (1/2) of 0.8; bound - 1 step (slowness 1) = 0.8"


@pytest.mark.parametrize("name", ["bracket", "verify", "trend", "grid", "tpe", "random"])
def test_every_searcher_retries_a_failure_at_the_planted_optimum(name: str) -> None:
    clean = run(name, obeys, trials_per_cell=8)  # tpe and random: the whole grid, so they hit it
    r = simulate(
        make_searcher(name, LAT, study_name=name, trials_per_cell=8),
        failing(planted(LAT, obeys), FLAKY, 5, 1),
        concurrency=2,
    )
    assert r.settled == clean.settled
    assert r.settled[FLAKY] == 0.8
    assert len(r.trials) == len(clean.trials) + 1
    retry = [t for t in r.trials if t.proposal.reason.startswith("retry after failure")]
    assert [(t.proposal.cell, t.proposal.lr, t.outcome.status) for t in retry] == [(FLAKY, 0.8, "ok")]


def test_failures_past_max_retries_count_as_diverged() -> None:
    diverged = simulate(
        make_searcher("monotone", LAT, study_name="diverged"),
        failing(planted(LAT, obeys), FLAKY, 5, 99, status="diverged"),
        concurrency=2,
    )
    r = simulate(make_searcher("monotone", LAT), failing(planted(LAT, obeys), FLAKY, 5, 99), concurrency=2)
    assert r.settled == diverged.settled
    assert r.settled[FLAKY] == 1.6  # 0.8 never finished: the bound wins, as if 0.8 diverged
    assert len(r.trials) == len(diverged.trials) + 2  # two retries, then it counts as diverged
    flaky = [t for t in r.trials if t.proposal.cell == FLAKY]
    assert [(t.proposal.lr, t.outcome.status) for t in flaky] == [(1.6, "ok")] + [(0.8, "failed")] * 3
    assert [t.proposal.reason for t in flaky[2:]] == [
        "retry after failure (1/2) of 0.8; bound - 1 step (slowness 1) = 0.8",
        (
            "retry after failure (2/2) of 0.8, the last: another failure counts as diverged; "
            "bound - 1 step (slowness 1) = 0.8"
        ),
    ]


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_sets_how_often_a_failure_is_retried(max_retries: int) -> None:
    diverged = simulate(
        make_searcher("monotone", LAT, study_name="diverged"),
        failing(planted(LAT, obeys), FLAKY, 5, 99, status="diverged"),
        concurrency=2,
    )
    r = simulate(
        make_searcher("monotone", LAT, max_retries=max_retries),
        failing(planted(LAT, obeys), FLAKY, 5, 99),
        concurrency=2,
    )
    assert r.settled == diverged.settled
    assert len(r.trials) == len(diverged.trials) + max_retries


def test_a_failure_is_not_read_as_divergence_in_the_first_cell() -> None:
    # if the failed start counted as diverged, the first cell would step down to 0.4 and settle low
    r = simulate(
        make_searcher("monotone", LAT), failing(planted(LAT, obeys), Cell(0, 0), 6, 2), concurrency=2
    )
    assert settled_index(r) == {c: obeys(c) for c in CELLS}
    first = [t for t in r.trials if t.proposal.cell == Cell(0, 0)]
    assert [(t.proposal.lr, t.outcome.status) for t in first] == [
        (1.6, "failed"),
        (0.8, "ok"),
        (1.6, "failed"),
        (1.6, "ok"),
        (3.2, "ok"),
    ]
