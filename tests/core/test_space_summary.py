"""Lattice geometry and the per-cell summary."""

from __future__ import annotations

import math

import pytest

from raysweep.analysis.summary import TrialRow, format_summary, summarize
from raysweep.core.space import Cell, Lattice


def test_lattice_predecessors_and_names() -> None:
    lat = Lattice(models=("a", "b"), epochs=(0.25, 1.0, 2.0), lrs=(0.1, 0.2))
    assert list(lat.cells())[:4] == [Cell(0, 0), Cell(0, 1), Cell(0, 2), Cell(1, 0)]
    assert lat.predecessors(Cell(0, 0)) == ()
    assert set(lat.predecessors(Cell(1, 1))) == {Cell(0, 1), Cell(1, 0)}
    assert lat.name(Cell(1, 0)) == "b@0.25" and lat.name(Cell(0, 1)) == "a@1"
    assert lat.cell_of("b", 2.0) == Cell(1, 2)
    assert lat.lr_index(0.2) == 1


def test_summary_picks_best_lr_ties_to_larger_and_counts_states() -> None:
    rows = summarize(
        [
            TrialRow("a", 1.0, 0.1, "ok", 0.5, 0.9),
            TrialRow("a", 1.0, 0.2, "ok", 0.5, 0.91),
            TrialRow("a", 1.0, 0.4, "diverged", math.inf),
            TrialRow("b", 1.0, 0.4, "failed", math.inf),
        ],
        models=("a", "b"), epochs=(1.0,),
    )
    assert [r.cell for r in rows] == ["a@1", "b@1"]
    assert rows[0].best_lr == 0.2 and rows[0].trials == 3 and rows[0].diverged == 1
    assert rows[1].best_lr is None and rows[1].failed == 1 and math.isinf(rows[1].val_loss)
    text = format_summary(rows)
    assert "a@1" in text and "0.2" in text


def test_lr_curve_plot_is_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from raysweep.analysis.plots import plot_lr_curves

    trials = [TrialRow(m, e, lr, "ok", 1.0 + abs(lr - 0.4) + 0.1 * e, 0.5)
              for m in ("a", "b") for e in (1.0, 2.0) for lr in (0.1, 0.2, 0.4, 0.8)]
    trials.append(TrialRow("a", 1.0, 3.2, "diverged", math.inf))
    rows = summarize(trials, models=("a", "b"), epochs=(1.0, 2.0))
    out = plot_lr_curves(trials, rows, models=("a", "b"), epochs=(1.0, 2.0), path=tmp_path / "c.png")
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_curve_plot_keeps_blown_up_losses_off_the_scale() -> None:
    from raysweep.analysis.plots import _top

    trials = [TrialRow("a", 1.0, lr, "ok", loss, 0.5) for lr, loss in ((0.1, 2.3), (0.2, 1.0), (0.4, 0.8))]
    assert _top(trials) == pytest.approx(2.3 * 1.05)  # nothing blew up: the largest loss sets the top
    trials.append(TrialRow("a", 1.0, 1.6, "ok", 1e20, 0.1))  # finite, but blown up
    assert _top(trials) == pytest.approx(1.5 * 2.3 * 1.05)
    assert _top([]) == 1.0
    # a curve whose only finished trial blew up does not set the scale
    trials.append(TrialRow("b", 1.0, 0.8, "ok", 1e20, 0.1))
    assert _top(trials) == pytest.approx(1.5 * 2.3 * 1.05)
