"""Curves in the results tables (issue 16): the `curve` column written and read back, what a
searcher sees of a run stopped part-way and what that costs, on hand-built tables with known answers;
old tables (no curve column) still read, seen only at their end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from raysweep.bench.table import load_table
from raysweep.core.errors import SpecError
from raysweep.results.rows import TrialRow, format_curve, parse_curve, table_cells, write_table

HEADER = "model,model_params,epochs,lr,seed,val_loss,flops,core_hours,curve\n"


def _table(tmp_path: Path, body: str, header: str = HEADER) -> str:
    path = tmp_path / "t.csv"
    path.write_text(header + body)
    return str(path)


def test_curve_cell_round_trips() -> None:
    points = ((0.125, 2.5), (0.5, 1.25), (1.0, math.inf))
    assert format_curve(points) == "0.125:2.5;0.5:1.25;1:inf"
    assert parse_curve(format_curve(points)) == points
    assert parse_curve("") == ()
    row = TrialRow("a", 1.0, 0.1, "ok", 1.0, flops=10.0, curve=((0.5, 2.0), (1.0, 1.0)))
    assert table_cells(row)[-1] == "0.5:2;1:1"


@pytest.mark.parametrize("bad", ["0.5", "0:1", "1.5:1", "0.5:nan", "0.5:1;0.5:2"])
def test_bad_curve_cells_are_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_curve(bad)


def test_partial_losses_and_costs_on_a_hand_built_table(tmp_path: Path) -> None:
    body = (
        "a,10,1,0.1,0,1.0,100,,0.25:4;0.5:3;0.75:2;1:1\n"
        "a,10,1,0.1,1,1.2,100,,0.25:6;0.5:5;0.75:2.4;1:1.2\n"
        "a,10,1,0.2,0,0.9,300,,0.25:3;0.5:2;1:0.9\n"      # one seed of 0.2 lacks the 0.75 point
        "a,10,1,0.2,1,0.9,100,,0.25:3;0.5:2;0.75:1;1:0.9\n"
        "a,10,1,0.4,0,inf,60,,0.25:2.5\n"                  # diverged after its first evaluation, at 60 FLOPs
    )
    t = load_table(_table(tmp_path, body))
    cell = next(iter(t.lattice.cells()))
    assert t.has_curves
    assert t.fracs(cell, 0) == (0.25, 0.5, 0.75, 1.0)
    assert t.fracs(cell, 1) == (0.25, 0.5, 1.0)  # the points every seed holds
    assert t.loss_at(cell, 0, 0.25) == pytest.approx(5.0)  # mean over seeds at the point
    assert t.loss_at(cell, 0, 0.6) == pytest.approx(4.0)   # the last point at or before 0.6
    assert t.loss_at(cell, 0, 1.0) == pytest.approx(1.1) == t.mean_loss(cell, 0)
    assert t.loss_at(cell, 0, 0.25, row=1) == 6.0
    assert t.loss_at(cell, 0, 0.1) is None  # nothing evaluated yet
    assert t.loss_at(cell, 2, 0.25) == 2.5
    assert t.loss_at(cell, 2, 0.5) == math.inf  # diverged past its last point
    # one full trial of the cell: the mean FLOPs over the LRs that finished (100, 200), not the diverged one
    assert t.full_flops(cell) == pytest.approx(150)
    assert t.cost(cell, 0, 0.25) == pytest.approx(0.25 * 100 / 150)
    assert t.cost(cell, 1, 1.0) == pytest.approx(200 / 150)
    # the diverged run costs frac of a full trial up to the 60 FLOPs it spent
    assert t.cost(cell, 2, 0.25) == pytest.approx(0.25)
    assert t.cost(cell, 2, 1.0) == pytest.approx(60 / 150)


def test_old_tables_read_as_before_seen_only_at_the_end(tmp_path: Path) -> None:
    header = "model,model_params,epochs,lr,seed,val_loss,flops,core_hours\n"
    t = load_table(_table(tmp_path, "a,10,1,0.1,0,1.5,100,\na,10,1,0.2,0,1.25,100,\n", header))
    cell = next(iter(t.lattice.cells()))
    assert not t.has_curves
    assert t.fracs(cell, 0) == (1.0,)
    assert t.loss_at(cell, 0, 1.0) == 1.5
    assert t.loss_at(cell, 0, 0.5) is None
    assert t.cost(cell, 1) == 1.0


def test_no_flops_column_costs_the_fraction(tmp_path: Path) -> None:
    t = load_table(_table(tmp_path, "a,1,0.1,2.0,0.5:3;1:2\n", "model,epochs,lr,val_loss,curve\n"))
    cell = next(iter(t.lattice.cells()))
    assert t.cost(cell, 0, 0.5) == 0.5


def test_a_bad_curve_names_file_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="line 2, column curve"):
        load_table(_table(tmp_path, "a,10,1,0.1,0,1.0,100,,0.5-3\n"))


def test_write_table_then_load_keeps_the_curves(tmp_path: Path) -> None:
    rows = [TrialRow("a", 1.0, lr, "ok", 1.0 + lr, flops=5.0, model_params=3, seed="0",
                     curve=((0.5, 2.0 + lr), (1.0, 1.0 + lr))) for lr in (0.1, 0.2)]
    path = str(tmp_path / "w.csv")
    write_table(path, (table_cells(r) for r in rows))
    t = load_table(path)
    cell = next(iter(t.lattice.cells()))
    assert t.loss_at(cell, 1, 0.5) == pytest.approx(2.2)
