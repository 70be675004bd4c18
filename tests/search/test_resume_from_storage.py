"""Resuming a search from its Optuna storage after the driver died (a real sqlite file)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from raysweep.core.space import Cell
from raysweep.search import CellSearcher, Outcome, Proposal, make_searcher
from raysweep.search.simulate import simulate
from raysweep.search.testing import planted, toy_lattice

LAT = toy_lattice(2, 3)
SURFACE = planted(LAT, lambda c: 6 - (c.m + 2 * c.e) // 2)


def first_half(searcher: CellSearcher, n_done: int) -> tuple[set[tuple[Cell, float]], Proposal]:
    """Drive two slots until `n_done` trials finished and one runs; returns them and the running one."""
    running: dict[str, Proposal] = {}
    done: set[tuple[Cell, float]] = set()
    k = 0
    while True:
        while len(running) < 2:
            p = searcher.suggest(f"a{k}")
            if not isinstance(p, Proposal):
                break
            running[f"a{k}"] = p
            k += 1
        if len(done) >= n_done and len(running) == 1:
            return done, next(iter(running.values()))
        trial_id, p = next(iter(running.items()))  # the oldest finishes first
        del running[trial_id]
        searcher.on_trial_complete(trial_id, SURFACE(p.cell, p.lr))
        done.add((p.cell, p.lr))


@pytest.mark.parametrize("name", ["monotone", "bracket", "verify", "trend", "tpe", "random"])
def test_resume_after_a_dead_driver(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    opts = {"trials_per_cell": 2, "seed": 3}
    reference = simulate(make_searcher(name, LAT, study_name="ref", **opts), SURFACE, concurrency=2)

    done, left_running = first_half(make_searcher(name, LAT, storage=url, study_name="s", **opts), 5)
    # the driver is gone: a new one opens the same study
    again = make_searcher(name, LAT, storage=url, study_name="s", **opts)
    assert again.interrupted == 1  # type: ignore[attr-defined]
    run = simulate(again, SURFACE, concurrency=2, id_prefix="b")
    rerun = [(t.proposal.cell, t.proposal.lr) for t in run.trials]
    assert not done & set(rerun), "a finished trial ran again"
    assert (left_running.cell, left_running.lr) in rerun or name in ("tpe", "random")
    assert set(run.settled) == set(LAT.cells())
    if name not in ("tpe", "random"):  # deterministic: resuming changes nothing
        assert run.settled == reference.settled
        assert len(done) + len(rerun) == len(reference.trials)


def test_the_study_reads_on_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    simulate(make_searcher("monotone", LAT, storage=url, study_name="s"), SURFACE, concurrency=3)
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["raysweep.searcher"] == "monotone"
    assert study.user_attrs["raysweep.lattice"]["models"] == list(LAT.models)
    first = study.trials[0]
    assert first.params == {"cell": "m0@0.25", "lr": 1.6}
    assert first.user_attrs["reason"] == "first cell: start 1.6"
    assert first.user_attrs["status"] == "ok"
    assert first.value == SURFACE(Cell(0, 0), 1.6).val_loss
    assert {t.user_attrs["trial_id"] for t in study.trials} == {f"t{i:05d}" for i in range(len(study.trials))}


def test_a_study_from_another_lattice_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_searcher("monotone", LAT, storage=url, study_name="s").suggest("a")
    with pytest.raises(ValueError, match="raysweep.lattice"):
        make_searcher("monotone", toy_lattice(3, 3), storage=url, study_name="s")
    with pytest.raises(ValueError, match="raysweep.searcher"):
        make_searcher("bracket", LAT, storage=url, study_name="s")


@pytest.mark.parametrize("name", ["monotone", "trend", "tpe", "random"])  # bracket, verify: as monotone
def test_failures_count_toward_the_retry_cap_across_a_resume(tmp_path: Path, name: str) -> None:
    """The first LR tried in the first cell fails every time. The driver dies while its last retry
    runs: the next driver proposes that retry again (interrupted trials do not count) and, when it
    fails too, counts the LR as diverged, as one driver would have."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    opts = {"trials_per_cell": 2, "seed": 3}
    first = Cell(0, 0)

    def crashing() -> tuple[Callable[[Cell, float], Outcome], list[float]]:
        target: list[float] = []  # the LR that fails, once known

        def evaluate(cell: Cell, lr: float) -> Outcome:
            if cell == first and (not target or target[0] == lr):
                target[:1] = [lr]
                return Outcome(math.inf, "failed")
            return SURFACE(cell, lr)

        return evaluate, target

    evaluate, _ = crashing()
    reference = simulate(make_searcher(name, LAT, study_name="ref", **opts), evaluate, concurrency=1)

    evaluate, target = crashing()
    searcher = make_searcher(name, LAT, storage=url, study_name="s", **opts)
    done = 0
    while True:  # one slot, until the last retry of the failing LR is handed out
        p = searcher.suggest(f"a{done}")
        assert isinstance(p, Proposal)
        if p.reason.startswith("retry after failure (2/2)"):
            break
        searcher.on_trial_complete(f"a{done}", evaluate(p.cell, p.lr))
        done += 1
    assert (p.cell, p.lr) == (first, target[0])

    again = make_searcher(name, LAT, storage=url, study_name="s", **opts)
    assert again.interrupted == 1  # type: ignore[attr-defined]
    run = simulate(again, evaluate, concurrency=1, id_prefix="b")
    at_target = [t for t in run.trials if (t.proposal.cell, t.proposal.lr) == (first, target[0])]
    assert len(at_target) == 1, "the two failures before the resume count"
    assert at_target[0].proposal.reason.startswith(
        f"retry after failure (2/2) of {target[0]:g}, the last: another failure counts as diverged; "
    )
    assert at_target[0].outcome.status == "failed"
    assert set(run.settled) == set(LAT.cells())
    assert run.settled[first] != target[0]  # counted as diverged: any finished LR beats it
    if name not in ("tpe", "random"):  # deterministic: resuming changes nothing
        assert run.settled == reference.settled
        assert done + len(run.trials) == len(reference.trials)

    study_name = "s" if name not in ("tpe", "random") else f"s/{LAT.name(first)}"
    study = optuna.load_study(study_name=study_name, storage=url)
    cell = LAT.name(first)  # tpe and random: the study is the cell's own, without a `cell` param
    tries = [t for t in study.trials if (t.params.get("cell", cell), t.params["lr"]) == (cell, target[0])]
    assert [t.user_attrs["status"] for t in tries] == ["failed", "failed", "interrupted", "failed"]
    assert {t.state for t in tries} == {optuna.trial.TrialState.FAIL}


def test_failed_and_diverged_trials_read_apart_in_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher("monotone", LAT, storage=url, study_name="s")
    for trial_id, outcome in (("a", Outcome(math.inf, "failed")), ("b", Outcome(math.inf, "diverged"))):
        assert isinstance(searcher.suggest(trial_id), Proposal)
        searcher.on_trial_complete(trial_id, outcome)
    study = optuna.load_study(study_name="s", storage=url)
    assert [(t.state, t.user_attrs["status"]) for t in study.trials] == [
        (optuna.trial.TrialState.FAIL, "failed"),
        (optuna.trial.TrialState.FAIL, "diverged"),
    ]


@pytest.mark.parametrize("name", ["monotone", "tpe"])
def test_every_optuna_trial_carries_its_durable_key(tmp_path: Path, name: str) -> None:
    from raysweep.core.records import TrialKey

    url = f"sqlite:///{tmp_path / 's.db'}"
    simulate(make_searcher(name, LAT, storage=url, study_name="sk"), SURFACE, concurrency=2)
    studies = [s for s in optuna.get_all_study_names(url) if s == "sk" or s.startswith("sk/")]
    seen = 0
    for study_name in studies:
        for trial in optuna.load_study(study_name=study_name, storage=url).get_trials():
            key = TrialKey.from_token(trial.user_attrs["trial_key"])
            assert key.study == "sk" and key.attempt == 0
            assert key.lr == pytest.approx(trial.params["lr"], rel=1e-6)
            if "cell" in trial.params:
                assert key.cell == trial.params["cell"]
            seen += 1
    assert seen >= LAT.n_cells()
