"""`raysweep plan` on hand-built studies: a ranked list of runs that exist in the ladder and spend
the budget, and a verdict that says where the fit stops knowing (forecast, bound, withheld), carried
by the exit code and the JSON alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from raysweep.analysis.plan import format_plan, plan
from raysweep.analysis.study import StudyFit, analyze
from raysweep.analysis.testing import Surface, planted_runs, write_csv
from raysweep.analysis.verdict import BOUND, EXIT_CODES, FORECAST, MAX_EXTRAPOLATION, WITHHELD
from raysweep.cli import main

PARAMS = (10_000, 30_000, 100_000)
EPOCHS = (0.5, 1, 2, 4)
LRS = (0.1, 0.2, 0.4, 0.8)
GOOD = Surface()  # E = 0.3: a floor well inside the data's reach
NO_FLOOR = Surface(E=0.0)  # the law falls towards 0: its floor cannot be identified
TOP = GOOD.k * PARAMS[-1] * EPOCHS[-1]  # the largest compute the lattice measured


def _runs(surface: Surface):  # type: ignore[no-untyped-def]
    return planted_runs(surface, params=PARAMS, epochs=EPOCHS, lrs=LRS, seeds=2, noise=0.01)


@pytest.fixture(scope="module")
def good() -> StudyFit:
    return analyze(_runs(GOOD), replicates=30)


@pytest.fixture(scope="module")
def no_floor() -> StudyFit:
    return analyze(_runs(NO_FLOOR), replicates=30)


def _spend_the_budget(fit: StudyFit, p, budget: float) -> None:  # type: ignore[no-untyped-def]
    assert p.runs and p.runs[0].rung == p.rung
    for r in p.runs:
        assert r.rung in fit.models and fit.rung_params[r.rung] == r.params
        assert r.cost == pytest.approx(budget, rel=1e-9)
        assert r.epochs == pytest.approx(budget / fit.cost.per_epoch[r.rung])
        assert r.lr_grid in fit.lrs


def test_a_budget_inside_the_data_is_a_forecast_of_a_ladder_run(good: StudyFit) -> None:
    p = plan(good, TOP)
    assert p.verdict == FORECAST and p.exit_code == 0 and not p.reasons
    _spend_the_budget(good, p, TOP)
    head = p.runs[0]
    assert head.rung == "m2" and head.epochs == pytest.approx(4)  # the only rung whose epochs were measured
    assert head.loss_ci.contains(head.loss)
    assert head.loss == pytest.approx(GOOD.loss(head.params, head.epochs), rel=0.03)
    doc = p.to_json()
    assert doc["verdict"] == "forecast" and doc["exit_code"] == 0
    assert doc["loss_parametric"] == pytest.approx(head.loss) and doc["runs"][0]["loss"] == pytest.approx(head.loss)
    # the rungs the law prefers only past the measured epochs come after, with their reason, and no number
    for r in doc["runs"][1:]:
        assert r["verdict"] == BOUND and r["loss"] is None and "past the longest budget" in r["reasons"][0]
    assert "FORECAST" in format_plan(p, "good")


def test_a_budget_far_beyond_the_data_gives_only_a_bound_with_the_reason(good: StudyFit) -> None:
    budget = 1000 * TOP
    p = plan(good, budget)
    assert p.verdict == BOUND and p.exit_code == EXIT_CODES[BOUND] == 3
    assert any(f"forecasts stop at {MAX_EXTRAPOLATION:g}x" in r for r in p.reasons), p.reasons
    _spend_the_budget(good, p, budget)
    # the bound is the floor's lower end: below every loss the planted law can reach
    assert 0 < p.loss_bound <= GOOD.E
    doc = p.to_json()
    assert doc["loss_parametric"] is None and doc["loss_parametric_ci"] == [None, None]
    assert doc["runs"][0]["loss"] is None and doc["runs"][0]["loss_lower_bound"] == pytest.approx(p.loss_bound)
    text = format_plan(p, "good")
    assert "BOUND ONLY" in text and ">= " in text and "1e+03x the largest compute" in text


def test_a_floor_that_is_not_identified_withholds_the_forecast(no_floor: StudyFit) -> None:
    region = no_floor.region()
    assert not region.floor.identified and region.floor.reason
    p = plan(no_floor, TOP)  # inside the data, and still no number
    assert p.verdict == WITHHELD and p.exit_code == 4
    assert p.reasons[0] == region.floor.reason
    _spend_the_budget(no_floor, p, TOP)
    doc = p.to_json()
    assert all(r["loss"] is None and r["loss_lower_bound"] is None for r in doc["runs"])
    assert "NO FORECAST" in format_plan(p, "no floor")
    fit_json = no_floor.to_json()["forecast_region"]
    assert fit_json["floor"]["identified"] is False and fit_json["max_budget"] == pytest.approx(MAX_EXTRAPOLATION * TOP)


def test_the_cli_exit_code_and_json_carry_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_csv = write_csv(_runs(GOOD), tmp_path / "good.csv")
    bad_csv = write_csv(_runs(NO_FLOOR), tmp_path / "nofloor.csv")
    for table, budget, verdict in ((good_csv, TOP, FORECAST), (good_csv, 1e3 * TOP, BOUND),
                                   (bad_csv, TOP, WITHHELD)):
        code = main(["plan", "--table", str(table), "--budget", f"{budget:g}", "--bootstrap", "20", "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert code == EXIT_CODES[verdict] == doc["exit_code"] and doc["verdict"] == verdict
    assert main(["plan", "--table", str(good_csv), "--budget", f"{TOP:g}", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "verdict: FORECAST" in out and "runs that spend the budget" in out
    fit_out = tmp_path / "an"
    assert main(["analyze", "--table", str(bad_csv), "--out", str(fit_out), "--bootstrap", "20"]) == 0
    region = json.loads((fit_out / "fit.json").read_text())["forecast_region"]
    assert region["floor"]["identified"] is False and math.isfinite(region["max_budget"])


def test_a_law_for_repeated_data_ranks_the_runs_and_brings_its_own_floor(good: StudyFit,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         tmp_path: Path) -> None:
    from raysweep.analysis.repeated import fit_repeated

    law = fit_repeated(good.cells, "data_constrained", starts=4)
    p = plan(good, TOP, law)
    _spend_the_budget(good, p, TOP)
    assert any("'data_constrained' law" in n for n in p.notes)
    assert p.region is not None and p.region.floor.value == pytest.approx(law.params()["E"])
    if p.verdict == FORECAST:
        assert p.runs[0].loss == pytest.approx(law.predict(p.runs[0].params, p.runs[0].epochs))
    table = write_csv(_runs(GOOD), tmp_path / "good.csv")
    code = main(["plan", "--table", str(table), "--budget", f"{TOP:g}", "--bootstrap", "0", "--law",
                 "data_constrained", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == doc["exit_code"] and doc["runs"][0]["rung"] in good.models


def test_past_the_turnover_the_plan_names_a_cheaper_run_the_law_predicts_lower(good: StudyFit) -> None:
    """A study whose loss turns over (a planted repetition penalty: the largest rung is best near 5
    epochs, worse at 16): at the top corner's budget every run that spends it is past the turnover,
    so the plan names the measured-budget run the law for repeated data predicts lower, and the
    planted surface agrees. L(N, D) cannot turn over, so it never names one."""
    from raysweep.analysis.repeated import fit_repeated

    surface = Surface(penalty=4e-5)
    epochs = (0.5, 1, 2, 4, 8, 16)
    fit = analyze(planted_runs(surface, params=PARAMS, epochs=epochs, lrs=LRS, seeds=2, noise=0.005), replicates=0)
    law = fit_repeated(fit.cells, "overfit", starts=4)
    top = surface.k * PARAMS[-1] * epochs[-1]
    p = plan(fit, top, law)
    _spend_the_budget(fit, p, top)
    assert p.cheaper is not None and p.verdict == FORECAST
    c = p.cheaper
    assert c.cost < top and c.epochs in epochs and c.rung in fit.models and c.lr_grid in fit.lrs
    assert c.loss < p.runs[0].loss * (1 - 0.005)
    truth = min(surface.loss(r.params, r.epochs) for r in p.runs)
    assert surface.loss(c.params, c.epochs) < truth  # the planted surface agrees: spending less is better
    assert "spend less" in format_plan(p, "s") and any("turns over" in n for n in p.notes)
    assert p.to_json()["cheaper_run"]["rung"] == c.rung  # type: ignore[index]
    # inside the turnover's reach (a small budget) nothing cheaper is better, and L(N, D) never says so
    assert plan(fit, surface.k * PARAMS[0] * 1, law).cheaper is None
    assert plan(good, TOP).cheaper is None and plan(fit, top).cheaper is None


@pytest.mark.parametrize("share", [0.3, 1.0, 1000.0])
def test_the_plan_names_the_best_run_measured_within_the_budget(good: StudyFit, no_floor: StudyFit,
                                                               share: float) -> None:
    for fit in (good, no_floor):
        budget = share * TOP
        p = plan(fit, budget)
        within = [c for c in fit.cells if c.compute <= budget * (1 + 1e-9)]
        best = min(within, key=lambda c: c.loss)
        assert (p.measured, p.measured_loss, p.measured_cost) == (best.name, best.loss, best.compute)
        assert p.measured_cost <= budget * (1 + 1e-9)
        doc = p.to_json()
        assert doc["measured"] == best.name and doc["measured_loss"] == pytest.approx(best.loss)
        assert f"best measured within it    {best.name}: val loss {best.loss:.4f}, measured" in format_plan(p, "s")


def test_a_budget_below_every_measured_run_names_none(good: StudyFit) -> None:
    budget = 0.5 * min(c.compute for c in good.cells)
    p = plan(good, budget)
    assert p.measured == "" and math.isnan(p.measured_loss) and p.to_json()["measured_loss"] is None
    assert "best measured within it" not in format_plan(p, "good")
