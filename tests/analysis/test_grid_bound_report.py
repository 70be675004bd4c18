"""report.md warns only for cells whose best LR is an end of the LR grid itself (lr.low/lr.high of the
spec, recorded on the runs), and says once, not per cell, that a best LR at the edge of what a cell
tried is how a monotone sweep settles (issue 16, item 6)."""

from __future__ import annotations

from raysweep.analysis.report import study_report
from raysweep.analysis.runs import Runs
from raysweep.analysis.study import analyze
from raysweep.results.rows import TrialRow

GRID = (0.001, 0.008, 2.0)  # lr.low, lr.high, lr.factor: points 0.001 .. 0.008


def _runs(tried: dict[tuple[str, float], dict[float, float]], grid: tuple[float, ...] = GRID) -> Runs:
    sizes = {"t0": 1000, "t1": 4000}
    rows = [TrialRow(model=m, epochs=e, lr=lr, status="ok", val_loss=loss, flops=sizes[m] * e * 6.0,
                     model_params=sizes[m], seed="0", lr_grid=grid)  # type: ignore[arg-type]
            for (m, e), losses in tried.items() for lr, loss in losses.items()]
    return Runs(name="s", runs=tuple(rows), source="hand-built")


# a monotone-like sweep: t0 stepped up to lr.high (0.008) and won there at both budgets; t1 settled
# inside the grid, at the edge of what it tried (0.004 of {0.002, 0.004})
TRIED = {
    ("t0", 1.0): {0.002: 1.0, 0.004: 0.9, 0.008: 0.8},
    ("t0", 2.0): {0.004: 0.8, 0.008: 0.7},
    ("t1", 1.0): {0.002: 0.8, 0.004: 0.7},
    ("t1", 2.0): {0.002: 0.6, 0.004: 0.5},
}


def test_warning_names_only_the_cells_at_the_grids_bound_and_the_bound_to_widen() -> None:
    fit = analyze(_runs(TRIED), replicates=0)
    assert {c.name: c.lr_at_grid_bound for c in fit.cells} == {"t0@1": "high", "t0@2": "high", "t1@1": "", "t1@2": ""}
    md = study_report(fit)
    assert "## Warning: best LR at the edge of the LR grid" in md
    assert "- `lr.high`: raise it above 0.008 (cells t0@1, t0@2)" in md
    assert "t1@1" not in md.split("## Warning: best LR at the edge of the LR grid")[1].split("##")[0]
    # said once, naming no cell: every cell here is at the edge of what it tried
    assert md.count("smallest or largest LR that cell tried") == 1
    assert "edge of the LR grid they tried" not in md


def test_no_warning_when_every_best_lr_is_inside_the_grid() -> None:
    wide = (0.001, 0.064, 2.0)
    md = study_report(analyze(_runs(TRIED, wide), replicates=0))
    assert "Warning: best LR at the edge" not in md
    assert "smallest or largest LR that cell tried" in md


def test_lr_low_and_a_grid_that_is_not_a_power_of_the_factor() -> None:
    # lr.low 0.0015 with points 0.002, 0.004, ...: 0.002 is the lowest point, though it is not lr.low
    low = {("t0", 1.0): {0.002: 0.5, 0.004: 0.9}, ("t1", 1.0): {0.002: 0.9, 0.004: 0.5}}
    fit = analyze(_runs(low, (0.0015, 0.01, 2.0)), replicates=0)
    assert {c.name: c.lr_at_grid_bound for c in fit.cells} == {"t0@1": "low", "t1@1": ""}
    assert "- `lr.low`: lower it below 0.002 (cells t0@1)" in study_report(fit)


def test_a_table_without_the_grid_takes_the_ends_of_the_lrs_run() -> None:
    fit = analyze(_runs(TRIED, ()), replicates=0)
    assert not fit.lr_grid_recorded
    assert [c.name for c in fit.cells if c.lr_at_grid_bound] == ["t0@1", "t0@2"]
    assert "smallest and largest LR any run used" in study_report(fit)
