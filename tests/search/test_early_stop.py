"""search.early_stop: the pure decision rule, and the prior searcher applying it over its Optuna study."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from raysweep.core.records import StudyAttr
from raysweep.core.space import Lattice
from raysweep.search import AUTO_MARGIN, MonotoneSearcher, Outcome, Proposal
from raysweep.search import early_stop as es

M = 0.1  # margin in these tests


def test_auto_margin_is_one_sigma_of_the_measured_early_matched_step_seed_noise() -> None:
    assert AUTO_MARGIN == es.margin_of("auto") == pytest.approx(0.052, abs=0.005)
    assert es.margin_of(0.05) == 0.05
    with pytest.raises(ValueError, match="margin"):
        es.margin_of(-0.1)


def test_the_first_trial_of_a_cell_never_stops() -> None:
    curves = {"a": {10: 5.0, 20: 4.0}, "b": {10: 1.0, 20: 0.5}}  # a is far worse at every step
    assert es.decide("a", curves, first="a", margin=M) is None
    assert es.decide("b", curves, first="a", margin=M) is None  # b is better


def test_a_trial_better_at_the_matched_step_never_stops() -> None:
    # b was worse early, but is better at the latest matched step (20): it runs on
    curves = {"a": {10: 1.0, 20: 0.9, 30: 0.8}, "b": {10: 2.0, 20: 0.85}}
    assert es.decide("b", curves, first="a", margin=M) is None
    # a trial within the margin runs on too
    assert es.decide("b", {"a": {10: 1.0}, "b": {10: 1.0 + 0.99 * M}}, first="a", margin=M) is None


def test_a_trial_worse_by_more_than_the_margin_at_the_matched_step_stops() -> None:
    curves = {"a": {10: 1.0, 20: 0.8}, "b": {10: 1.5}}
    found = es.decide("b", curves, first="a", margin=M)
    assert found == es.Comparison(step=10, loss=1.5, incumbent="a", incumbent_loss=1.0)
    # compared at the same step only: b's step 20 does not exist, a's step 20 is not used
    assert es.decide("b", {"a": {20: 0.8}, "b": {10: 1.5}}, first="a", margin=M) is None


def test_a_trial_ahead_of_its_incumbent_is_compared_at_the_incumbents_latest_step() -> None:
    curves = {"a": {10: 1.0}, "b": {10: 1.2, 20: 0.5}}  # b reports 20 before a does: compared at 10
    found = es.decide("b", curves, first="a", margin=M)
    assert found is not None and found.step == 10 and found.loss == 1.2


def test_the_incumbent_is_the_best_other_trial_at_the_matched_step() -> None:
    curves = {"a": {10: 2.0}, "c": {10: 1.0}, "b": {10: 1.2}}
    found = es.decide("b", curves, first="a", margin=M)  # 1.2 > 1.0 * 1.1, though better than a
    assert found is not None and found.incumbent == "c"
    assert es.decide("b", curves, first="a", margin=0.3) is None


def test_no_other_trial_no_decision_and_non_finite_points_are_ignored() -> None:
    assert es.decide("b", {"b": {10: 9.0}}, first="a", margin=M) is None
    assert es.decide("b", {"a": {10: math.inf}, "b": {10: 9.0}}, first="a", margin=M) is None


def test_first_trial_is_the_earliest_proposed_still_standing() -> None:
    assert es.first_trial({"x": 7, "y": 3, "z": 5}) == "y"
    assert es.first_trial({}) is None


def test_saved_flops_is_the_rest_of_the_budget_at_the_same_rate() -> None:
    # 40 of 160 steps took 4e9 FLOPs: the 120 left would have taken 12e9
    assert es.saved_flops(4e9, 40, 160) == pytest.approx(12e9)
    assert es.saved_flops(4e9, 160, 160) == 0.0  # nothing left
    assert es.saved_flops(0.0, 0, 160) == 0.0


def test_decision_round_trips_through_a_study_attr() -> None:
    d = es.EarlyStop(step=20, total_steps=80, matched_step=20, loss=1.5, incumbent_lr=0.4, incumbent_loss=1.0,
                     margin=0.29, saved_flops=3e9, lr=0.8)
    assert es.EarlyStop.from_attr(d.to_attr()) == d
    assert "step 20/80" in d.reason() and "0.4" in d.reason()


# The prior searcher over its study ----------------------------------------------------------------

LATTICE = Lattice(models=("m0", "m1"), epochs=(1.0,), lrs=(0.1, 0.2, 0.4, 0.8))


def _searcher(storage: str | None, study: str = "es", margin: float | str | None = M) -> MonotoneSearcher:
    return MonotoneSearcher(LATTICE, start_lr=0.4, storage=storage, study_name=study, early_stop=margin)


def _report(s: MonotoneSearcher, tid: str, step: int, loss: float) -> es.EarlyStop | None:
    return s.on_trial_result(tid, step=step, val_loss=loss, flops=1e9 * step, total_steps=100)


def test_the_searcher_never_stops_the_first_trial_nor_a_better_one() -> None:
    s = _searcher(None)
    a, b = s.suggest("A"), s.suggest("B")  # the first cell: its start LR, one step below
    assert isinstance(a, Proposal) and isinstance(b, Proposal) and (a.lr, b.lr) == (0.4, 0.2)
    assert _report(s, "A", 25, 9.0) is None  # nothing to compare with yet
    assert _report(s, "B", 25, 1.0) is None  # better than A
    assert _report(s, "A", 50, 9.0) is None  # the first trial: never stopped, however bad
    assert _report(s, "B", 50, 0.6) is None


def test_the_searcher_stops_a_worse_trial_and_counts_it_only_as_not_better() -> None:
    s = _searcher(None)
    a, b = s.suggest("A"), s.suggest("B")
    assert isinstance(a, Proposal) and isinstance(b, Proposal)
    assert _report(s, "A", 25, 1.0) is None
    stop = _report(s, "B", 25, 1.5)  # 1.5 > 1.0 * (1 + 0.1): stopped at step 25 of 100
    assert stop is not None and stop.saved_flops == pytest.approx(75e9)
    assert (stop.lr, stop.incumbent_lr, stop.matched_step, stop.step) == (0.2, 0.4, 25, 25)
    assert _report(s, "B", 50, 1.4) is None  # stopped already: later reports change nothing
    # 0.2 is not better than 0.4: 0.4 is the best tried, the highest, so the first cell steps up
    s.on_trial_complete("A", Outcome(0.9))
    up = s.suggest("C")
    assert isinstance(up, Proposal) and (up.cell, up.lr) == (a.cell, 0.8)
    s.on_trial_complete("C", Outcome(1.2))
    assert s.settled()[a.cell] == 0.4  # never the stopped LR


def test_an_early_stop_is_kept_by_the_study_and_a_resumed_searcher_does_not_run_it_again(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    s = _searcher(storage)
    s.suggest("A"), s.suggest("B")
    _report(s, "A", 25, 1.0)
    assert _report(s, "B", 25, 2.0) is not None
    # the driver dies with A still running; a new one opens the same study
    r = _searcher(storage)
    assert r.interrupted == 1  # A only: B's stop was recorded when it was made
    study = optuna.load_study(study_name="es", storage=storage)
    stopped = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(stopped) == 1 and stopped[0].user_attrs[StudyAttr.STATUS] == "stopped"
    assert stopped[0].intermediate_values == {25: 2.0}
    assert set(r.early_stops()) == {stopped[0].user_attrs[StudyAttr.TRIAL_KEY]}
    again = r.suggest("A2")
    assert isinstance(again, Proposal) and again.lr == 0.4  # A again (interrupted); never B's 0.2
    assert r.suggest("X") is None  # nothing else to run in the first cell: B is decided
    # A's retry is now the cell's first trial standing: never stopped
    assert _report(r, "A2", 25, 50.0) is None


def test_without_early_stop_nothing_is_reported_or_stopped() -> None:
    s = _searcher(None, margin=None)
    s.suggest("A"), s.suggest("B")
    assert _report(s, "A", 25, 1.0) is None and _report(s, "B", 25, 100.0) is None

