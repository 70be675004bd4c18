"""Resuming a search from its Optuna storage after the driver died (a real sqlite file)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from raysweep.search import CellSearcher, Proposal, make_searcher
from raysweep.search.simulate import simulate
from raysweep.search.testing import planted, toy_lattice
from raysweep.space import Cell

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
