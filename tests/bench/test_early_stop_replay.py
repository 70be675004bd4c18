"""search.early_stop replayed (issue 16): the monotone searcher's own code driven over a hand-built
table with curves, each trial reporting the table's evaluation points on the way; what stops, where,
and what it costs in full trials of its cell. Also the warm-started variant's plan from an earlier
table, and the command line's variant options."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.bench.engine import run_replay, variants_for
from raysweep.bench.replay import main
from raysweep.bench.table import load_table
from raysweep.core.space import Cell
from raysweep.search import make_searcher
from raysweep.search.base import Outcome
from raysweep.search.simulate import simulate

HEADER = "model,model_params,epochs,lr,seed,val_loss,flops,core_hours,curve\n"


def _table(tmp_path: Path, rows: dict[float, str], flops: dict[float, float] | None = None) -> str:
    """One cell (model a, 1 epoch); rows: lr -> curve `frac:loss;...;1:final`."""
    lines = []
    for lr, curve in rows.items():
        final = curve.rsplit(":", 1)[1]
        lines.append(f"a,10,1,{lr},0,{final},{(flops or {}).get(lr, 100)},,{curve}\n")
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "".join(lines))
    return str(path)


def _replay(path: str, **kw: object) -> dict:
    return run_replay(path, searchers=["monotone", "monotone+es"], start_lr=0.4, concurrency=1, **kw)["searchers"]


def test_a_trial_clearly_worse_at_the_matched_step_stops_there_and_costs_that_share(tmp_path: Path) -> None:
    # monotone from 0.4 tries 0.4, then one step below (0.2); 0.2 is 50% worse at a quarter of its budget
    path = _table(tmp_path, {0.4: "0.25:2;0.5:1.5;0.75:1.2;1:1", 0.2: "0.25:3;0.5:2;0.75:1.5;1:1.1",
                             0.1: "0.25:4;0.5:3;0.75:2;1:1.5"})
    out = _replay(path)
    assert out["monotone"]["full_trials_per_cell"] == pytest.approx(2.0)
    assert out["monotone+es"]["full_trials_per_cell"] == pytest.approx(1.25)  # 0.4 whole, 0.2 stopped at 0.25
    assert out["monotone+es"]["stopped_per_cell"] == 1
    assert out["monotone+es"]["mean_trials_per_cell"] == 2  # a stopped trial is still a trial
    assert out["monotone+es"]["hit_rate"] == out["monotone"]["hit_rate"] == 1.0
    assert out["monotone+es"]["total_flops"] == pytest.approx(125)


def test_within_the_margin_nothing_stops_and_the_better_trial_is_kept(tmp_path: Path) -> None:
    # 0.2 is 20% worse early (inside a 0.29 margin), then better: it runs to the end and wins,
    # so monotone steps on to 0.1, which is far worse at its first point and stops
    path = _table(tmp_path, {0.4: "0.25:2;0.5:1.5;1:1", 0.2: "0.25:2.4;0.5:1.4;1:0.9", 0.1: "0.25:9;0.5:5;1:2"})
    out = _replay(path, early_stop=0.29)
    assert out["monotone"]["full_trials_per_cell"] == pytest.approx(3.0)
    assert out["monotone+es"]["full_trials_per_cell"] == pytest.approx(2.25)
    assert out["monotone+es"]["hit_rate"] == 1.0  # settled on 0.2, the best
    # a margin of 0.1 stops the 20%-worse trial, which was the best: early stopping's risk, measured
    tight = _replay(path, early_stop=0.1)["monotone+es"]
    assert tight["full_trials_per_cell"] == pytest.approx(1.25)
    assert tight["hit_rate"] == 0.0
    assert tight["mean_regret"] == pytest.approx(1 / 0.9 - 1)


def test_the_cells_first_trial_never_stops_and_a_better_trial_never_stops(tmp_path: Path) -> None:
    path = _table(tmp_path, {0.4: "0.25:9;0.5:8;1:1", 0.2: "0.25:2;0.5:1.5;1:1.2", 0.1: "0.25:3;1:2"})
    table = load_table(path)
    lat = table.lattice

    def curve(c: Cell, lr: float) -> list[tuple[float, float]]:
        i = lat.lr_index(lr)
        return [(f, table.loss_at(c, i, f)) for f in table.fracs(c, i) if f < 1]

    # both trials in flight at once: the first (0.4) is far worse at every matched step but never
    # stops; the second (0.2) is better at every matched step, so it never stops either
    run = simulate(make_searcher("monotone", lat, start_lr=0.4, early_stop="auto"),
                   lambda c, lr: Outcome(table.mean_loss(c, lat.lr_index(lr))),
                   concurrency=2, curve=curve)
    assert [t.proposal.lr for t in run.trials if t.stopped is not None] == []
    by_lr = {t.proposal.lr: t for t in run.trials}
    assert by_lr[0.2].start < by_lr[0.4].end  # in flight together: compared at matched steps


def test_variants_follow_what_the_table_and_the_options_allow(tmp_path: Path) -> None:
    assert variants_for(curves=False, warm=False) == []
    assert variants_for(curves=True, warm=False) == ["monotone+es"]
    assert variants_for(curves=True, warm=True) == ["monotone+es", "warm", "warm+es"]
    assert variants_for(curves=False, warm=True) == ["warm"]


def test_warm_variants_need_an_earlier_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _table(tmp_path, {0.4: "0.5:2;1:1", 0.2: "0.5:3;1:1.1"})
    with pytest.raises(SystemExit) as exit_:
        main(["--table", path, "--variants", "warm", "--searchers", "monotone"])
    assert exit_.value.code == 2
    assert "--warm-start" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--table", path, "--early-stop-margin", "-1", "--searchers", "monotone"])
    assert "--early-stop-margin" in capsys.readouterr().err


def test_the_command_prints_the_variant_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _table(tmp_path, {0.4: "0.25:2;0.5:1.5;1:1", 0.2: "0.25:3;0.5:2;1:1.1"})
    assert main(["--table", path, "--searchers", "monotone", "--peers", "none", "--start-lr", "0.4"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert float(rows["monotone+es"][2]) == pytest.approx(1.25)  # flops/cell
