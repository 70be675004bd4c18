"""benchmarks/validate_forecast.py's within-budget judge on planted studies: on a surface that turns
over (a repetition penalty), the best measured run within each held-out budget is the lowest cell
costing at most it, and the plan's answer is judged against that one; on a plain surface the best
within a budget is the frontier's."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest

from raysweep.analysis.runs import ComputeAxis, load_csv
from raysweep.analysis.testing import Surface, planted_runs, write_csv
from tests.benchmark_scripts import load_script


@pytest.fixture(scope="module")
def vf() -> ModuleType:
    return load_script("validate_forecast")


@pytest.mark.parametrize("penalty", [0.0, 4e-5])
def test_the_within_budget_judge_compares_with_the_best_cell_that_fits(vf: ModuleType, tmp_path: Path,
                                                                       penalty: float) -> None:
    runs = planted_runs(Surface(penalty=penalty), params=(10_000, 30_000, 100_000), epochs=(0.5, 1, 2, 4, 8, 16),
                        lrs=(0.1, 0.2, 0.4, 0.8), seeds=1, noise=0.002)
    path = write_csv(runs, tmp_path / "p.csv")
    res = vf.validate(str(path), 0, "chinchilla")
    cells = load_csv(str(path)).cells(ComputeAxis.FLOPS)
    within = res["within_budget"]
    assert within and len(within) == sum(c.compute > res["cut_flops"] for c in cells)
    for w in within:
        fits = [c for c in cells if c.compute <= w["compute"] * (1 + vf.SAME)]
        best = min(fits, key=lambda c: c.loss)
        assert (w["best"], w["best_loss"]) == (best.name, best.loss)
        assert w["predicted_err"] == pytest.approx(w["predicted"] / best.loss - 1)
        if math.isfinite(w["regret"]):  # the answer was measured: its regret is its loss over the best's
            assert w["regret"] >= -1e-12 and w["right"] == (w["answer_loss"] == best.loss)
    summary = res["within_budget_summary"]
    assert summary["budgets"] == len(within) and summary["right"] == sum(w["right"] for w in within)
    if penalty:  # the planted turnover: some held-out budget's best cell costs less than the budget
        assert any(w["best"] != w["budget_cell"] for w in within)
    assert "within each held-out budget" in vf.format_result(res)


def test_points_are_scored_as_plan_states_them(vf: ModuleType) -> None:
    rows = [{"verdict": "forecast", "parametric_err": 0.02, "rung_off": 0, "loss": 0.3, "bound": math.nan},
            {"verdict": "forecast", "parametric_err": -0.05, "rung_off": 1, "loss": 0.3, "bound": math.nan},
            {"verdict": "bound", "parametric_err": -0.2, "rung_off": 0, "loss": 0.3, "bound": 0.25},
            {"verdict": "bound", "parametric_err": -0.2, "rung_off": 0, "loss": 0.3, "bound": 0.31},
            {"verdict": "withheld", "parametric_err": 0.5, "rung_off": 2, "loss": 0.3, "bound": math.nan}]
    got = vf.as_stated(rows)
    assert got == {"goal": 0.03, "forecasts": 2, "within_goal": 1, "rung_right": 1, "bounds": 2, "bounds_held": 1,
                   "withheld": 1}


@pytest.mark.parametrize("penalty", [0.0, 4e-5])
def test_the_check_says_where_the_fitted_cells_turn_over(vf: ModuleType, tmp_path: Path, penalty: float) -> None:
    runs = planted_runs(Surface(penalty=penalty), params=(10_000, 30_000, 100_000), epochs=(0.5, 1, 2, 4, 8, 16),
                        lrs=(0.1, 0.2, 0.4, 0.8), seeds=1, noise=0.0)
    path = write_csv(runs, tmp_path / "p.csv")
    res = vf.validate(str(path), 0, "chinchilla")
    cells = load_csv(str(path)).cells(ComputeAxis.FLOPS)
    fitted = [c for c in cells if c.compute <= res["cut_flops"]]
    turned = res["turnover"]
    assert set(turned["fitted"]) <= set(turned["all"])
    for line in turned["all"]:  # "best < last": the rung's best budget beats its longest one
        best, last = line.split(" < ")
        loss = {c.name: c.loss for c in cells}
        assert best.split("@")[0] == last.split("@")[0] and loss[best] < loss[last]
    if penalty:
        assert turned["all"]
    else:  # a law with no penalty never turns over: every rung is best at its longest budget
        assert turned == {"fitted": [], "all": []}
    assert len(turned["fitted"]) == sum(
        min((c for c in fitted if c.model == m), key=lambda c: c.loss).epochs
        < max(c.epochs for c in fitted if c.model == m) for m in {c.model for c in fitted})
    for row in res["predictions"]:  # without a bootstrap the floor is identified: a forecast up to 4x, a bound past it
        top = max(c.compute for c in fitted)
        assert row["verdict"] in ("forecast", "bound")
        if row["compute"] > 4 * top:
            assert row["verdict"] == "bound"
    st = res["as_stated"]
    assert st["forecasts"] + st["bounds"] + st["withheld"] == len(res["predictions"])
    assert "as plan states them" in vf.format_result(res) and "turnover" in vf.format_result(res)
