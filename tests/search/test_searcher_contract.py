"""The `CellSearcher` contract, checked once per registered searcher (one subclass each)."""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Iterable
from typing import Any

import pytest

from raysweep.core.records import TrialStatus as Status
from raysweep.core.space import Cell
from raysweep.search import FINISHED, SEARCHERS, CellSearcher, Outcome, Proposal, make_searcher
from raysweep.search.simulate import simulate
from raysweep.search.testing import planted, toy_lattice

LAT = toy_lattice(2, 3)
OPTIONS: dict[str, Any] = {
    "start_lr": 1.6,
    "slowness": 1,
    "tie_tolerance": 0.0,
    "trials_per_cell": 3,
    "seed": 0,
    "max_retries": 2,
    "storage": None,
}


def surface(c: Cell, lr: float) -> Outcome:
    out = planted(LAT, lambda c: 5 - c.e // 2, diverge_from=7)(c, lr)
    if (c.m + LAT.lr_index(lr)) % 5 == 0:  # a sprinkling of trials that crash every time
        return Outcome(math.inf, "failed")
    return out


def check_repeats(trials: Iterable[tuple[Cell, float, Status]]) -> None:
    """A (cell, lr) runs again only after it failed, and at most 1 + max_retries times in all."""
    runs: dict[tuple[Cell, float], list[Status]] = collections.defaultdict(list)
    for cell, lr, status in trials:
        runs[(cell, lr)].append(status)
    for key, statuses in runs.items():
        assert len(statuses) <= 1 + OPTIONS["max_retries"], key
        assert all(s == "failed" for s in statuses[:-1]), f"{key} ran again after {statuses}"


class SearcherContract:
    name: str

    def make(self, **kw: Any) -> CellSearcher:
        return make_searcher(self.name, LAT, **{**OPTIONS, "study_name": f"contract-{self.name}", **kw})

    @pytest.mark.parametrize("concurrency", [1, 2, 3, 4])
    def test_finishes_with_out_of_order_completion(self, concurrency: int) -> None:
        rng = random.Random(concurrency)
        searcher = self.make()
        run = simulate(
            searcher, surface, concurrency=concurrency, duration=lambda c, lr: rng.uniform(0.1, 3.0)
        )
        assert run.max_in_flight <= concurrency
        for t in run.trials:
            assert isinstance(t.proposal, Proposal)
            assert t.proposal.cell in set(LAT.cells())
            assert t.proposal.lr in LAT.lrs
            assert t.proposal.reason
        tried = [(t.proposal.cell, t.proposal.lr) for t in run.trials]
        check_repeats((t.proposal.cell, t.proposal.lr, t.outcome.status) for t in run.trials)
        retried = {k for k, n in collections.Counter(tried).items() if n > 1}
        assert retried, "the surface's crashed trials are retried"
        for t in run.trials:
            key = (t.proposal.cell, t.proposal.lr)
            if key in retried and t.proposal.reason.startswith("retry after failure"):
                assert f"of {t.proposal.lr:g}" in t.proposal.reason
        assert set(run.settled) == set(LAT.cells())
        assert all(lr in LAT.lrs for lr in run.settled.values())
        for cell, lr in run.settled.items():
            assert (cell, lr) in tried, "a cell settles on an LR it tried"
        assert searcher.suggest("after-the-end") is FINISHED

    def test_returns_none_while_waiting_then_resumes(self) -> None:
        searcher = self.make()
        issued: dict[str, Proposal] = {}
        while True:
            p = searcher.suggest(f"w{len(issued)}")
            assert p is not FINISHED, "nothing is settled yet"
            if p is None:
                break
            assert isinstance(p, Proposal)
            issued[f"w{len(issued)}"] = p
            assert len(issued) <= LAT.n_cells() * len(LAT.lrs)
        assert issued
        assert searcher.suggest("w-again") is None  # still waiting: asking again changes nothing
        for trial_id, p in reversed(list(issued.items())):  # complete in reverse order
            searcher.on_trial_complete(trial_id, surface(p.cell, p.lr))
        run = simulate(searcher, surface, concurrency=2)
        check_repeats(
            [(p.cell, p.lr, surface(p.cell, p.lr).status) for p in issued.values()]
            + [(t.proposal.cell, t.proposal.lr, t.outcome.status) for t in run.trials]
        )
        assert set(run.settled) == set(LAT.cells())

    @pytest.mark.parametrize("seed", range(16))
    def test_any_mix_of_outcomes_reaches_finished(self, seed: int) -> None:
        """Whatever each trial reports (ok, diverged or failed, at random), the search never waits
        forever: `simulate` raises if it returns None with nothing running, and caps the trials."""
        rng = random.Random(seed)
        planted_surface = planted(LAT, lambda c: 5 - c.e // 2)
        p_fail, p_diverge = rng.choice([(0.3, 0.2), (0.6, 0.1), (0.9, 0.0), (1.0, 0.0)])

        def chaos(c: Cell, lr: float) -> Outcome:
            x = rng.random()
            if x < p_fail:
                return Outcome(math.inf, "failed")
            if x < p_fail + p_diverge:
                return Outcome(math.inf, "diverged")
            return planted_surface(c, lr)

        searcher = self.make(max_retries=rng.choice([0, 1, 2]))
        run = simulate(
            searcher,
            chaos,
            concurrency=rng.randint(1, 4),
            duration=lambda c, lr: rng.uniform(0.1, 3.0),
            max_trials=LAT.n_cells() * len(LAT.lrs) * 3,
        )
        assert set(run.settled) == set(LAT.cells())
        assert searcher.suggest("after-the-end") is FINISHED

    def test_max_retries_is_checked(self) -> None:
        with pytest.raises(ValueError, match="max_retries >= 0"):
            self.make(max_retries=-1)

    def test_trial_ids_are_checked(self) -> None:
        searcher = self.make()
        assert isinstance(searcher.suggest("a"), Proposal)
        with pytest.raises(ValueError, match="already running"):
            searcher.suggest("a")
        with pytest.raises(KeyError):
            searcher.on_trial_complete("never-suggested", Outcome(1.0))

    def test_settled_is_empty_before_any_result(self) -> None:
        searcher = self.make()
        searcher.suggest("a")
        assert searcher.settled() == {}


class TestGrid(SearcherContract):
    name = "grid"


class TestMonotone(SearcherContract):
    name = "monotone"


class TestBracket(SearcherContract):
    name = "bracket"


class TestVerify(SearcherContract):
    name = "verify"


class TestTrend(SearcherContract):
    name = "trend"


class TestTPE(SearcherContract):
    name = "tpe"


class TestRandom(SearcherContract):
    name = "random"


def test_every_registered_searcher_has_a_contract_class() -> None:
    covered = {cls.name for cls in SearcherContract.__subclasses__()}
    assert covered == set(SEARCHERS)


def test_unknown_searcher_names_the_choices() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        make_searcher("annealing", LAT)


def test_start_lr_must_be_on_the_grid() -> None:
    with pytest.raises(ValueError, match="`start_lr` must be a point of the LR grid"):
        make_searcher("monotone", LAT, start_lr=1.5)
