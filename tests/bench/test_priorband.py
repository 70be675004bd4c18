"""PriorBand (NePS) as a peer: the job the child gets from a hand-built table, the child's snapping
and settling, the cost metered back, and the real NePS run in its own environment (`make neps-env`;
skipped, saying why, where that environment is missing). The real run is also the pin of the NePS
surface the child uses (`AskAndTell`, `algorithms.priorband`, `HPOFloat`/`HPOInteger`,
`trial.metadata.previous_trial_id`): a NePS that changes them fails here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from raysweep.bench import _priorband_child as child
from raysweep.bench import priorband
from raysweep.bench.peers import PEERS, cell_fracs, draw_rows
from raysweep.bench.table import load_table

HEADER = "model,model_params,epochs,lr,seed,val_loss,flops,core_hours,curve\n"
# two cells (one model, two budgets), four LRs, four evaluation points; the 1-epoch run of lr 0.8
# diverges after its second point, and the table lacks the 2-epoch run of lr 0.1
CURVES = {
    (1, 0.1): "4,3,2,1", (1, 0.2): "5,4,3,2", (1, 0.4): "3,2.5,1.5,0.5", (1, 0.8): "4.5,4",
    (2, 0.2): "4,3,2,1.5", (2, 0.4): "3,2,1,0.4", (2, 0.8): "2,1.5,1.2,1.1",
}


def _table(tmp_path: Path) -> str:
    lines = []
    for (epochs, lr), text in CURVES.items():
        losses = text.split(",")
        points = ";".join(f"{k / 4:g}:{v}" for k, v in enumerate(losses, 1))
        final = losses[-1] if len(losses) == 4 else "inf"
        lines.append(f"a,10,{epochs},{lr},0,{final},{100 * epochs * len(losses) / 4},,{points}\n")
    path = tmp_path / "pb.csv"
    path.write_text(HEADER + "".join(lines))
    return str(path)


def test_the_job_holds_each_runs_cost_and_loss_at_every_point(tmp_path: Path) -> None:
    table = load_table(_table(tmp_path))
    job = priorband.job_of(table, [(7, draw_rows(table, "priorband", 7, False))], budget=2.0, eta=3,
                           start_lr=0.4)
    assert job["lrs"] == [0.1, 0.2, 0.4, 0.8] and job["start_lr"] == 0.4 and job["runs"][0]["seed"] == 7
    first, second = job["runs"][0]["cells"]
    assert (first["m"], first["e"], second["m"], second["e"]) == (0, 0, 0, 1)
    assert first["cost"]["0"] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # full trials of the cell
    assert first["loss"]["2"] == [3.0, 2.5, 1.5, 0.5]
    assert first["loss"]["3"] == [4.5, 4.0, None, None]  # diverged after its second point
    assert first["cost"]["3"][1] == pytest.approx(0.5) and first["cost"]["3"][3] <= 0.5  # it spent no more
    assert "0" not in second["cost"]  # the table lacks the run: PriorBand's ask for it fails at once


def test_the_child_snaps_to_the_grid_and_settles_on_the_longest_run() -> None:
    lrs = [0.1, 0.2, 0.4, 0.8]
    assert [child._snap(lrs, x) for x in (0.05, 0.14, 0.15, 0.3, 5.0)] == [0, 0, 1, 2, 3]
    # the lowest loss among runs at the furthest point reached, not a lower loss seen earlier
    assert child._settle([[3, 1, 0, 0.1], [1, 4, 0, 0.9], [2, 4, 1, 0.5], [0, 4, 0, None]], 0) == 2
    assert child._settle([[0, 2, 0, None]], 3) == 3  # nothing finite: the prior's index


needs_neps = pytest.mark.skipif(not priorband.available(),
                                reason=f"NePS's environment ({priorband.neps_python()}) is not built: make neps-env")


@needs_neps
def test_priorband_spends_its_budget_and_the_meter_charges_what_it_ran(tmp_path: Path) -> None:
    table = load_table(_table(tmp_path))
    runs = [(s, draw_rows(table, "priorband", s, False)) for s in (0, 1)]
    job = priorband.job_of(table, runs, budget=2.0, eta=3, start_lr=0.4)
    answer = priorband.run_child(job)
    assert answer["neps"] == "0.17.0"
    assert priorband.run_child(job) == answer  # seeded: the same trials again
    reps = priorband.replay_priorband(table, runs, budget=2.0, eta=3, start_lr=0.4)
    for run, rep in zip(answer["runs"], reps):
        first, second = run["cells"]
        assert first["prior"] == 0.4  # start_lr; the next cell's prior is the monotone bound
        assert second["prior"] == job["lrs"][first["settled"]]
        spent = 0.0
        for cell, got in zip(table.lattice.cells(), run["cells"]):
            costs = []
            for i, k, k0, loss in got["evals"]:
                assert 1 <= k <= 4 and 0 <= k0 <= k and i in range(4)
                fr = cell_fracs(table, cell)
                costs.append(table.cost(cell, i, fr[k - 1]) - (table.cost(cell, i, fr[k0 - 1]) if k0 else 0.0))
                seen = table.loss_at(cell, i, fr[k - 1])
                assert loss == (seen if seen is not None and math.isfinite(seen) else None)
            # it asks until it has spent the budget, and not one trial longer
            assert sum(costs) >= 2.0 - 1e-9 and sum(costs[:-1]) < 2.0
            spent += sum(costs)
            full = [e for e in got["evals"] if e[1] == 4 and e[3] is not None]
            if full:
                assert got["settled"] == min(full, key=lambda e: (e[3], -e[0]))[0]
        assert rep["full_trials"] == pytest.approx(spent)
        assert rep["flops"] == pytest.approx(spent * 100, rel=0.5)  # a cell's full trial is 100-200 FLOPs
        assert set(rep["settled"]) == set(table.lattice.cells())


@needs_neps
def test_priorband_scores_beside_the_others(tmp_path: Path) -> None:
    from raysweep.bench.engine import run_replay

    result = run_replay(_table(tmp_path), searchers=["monotone", "priorband"], repetitions=2)
    entry = result["searchers"]["priorband"]
    assert entry["full_trials_per_cell"] >= 2.0 and entry["peer"] == PEERS["priorband"].note


def test_a_missing_neps_environment_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.cli import main

    path = _table(tmp_path)
    monkeypatch.setenv(priorband.ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "searcher", "--table", path, "--searchers", "monotone", "--peers", "priorband"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--peers" in err and "make neps-env" in err and str(tmp_path / "nowhere") in err
    # `auto` replays the other peers and says which it skipped, and why
    assert main(["bench", "searcher", "--table", path, "--searchers", "monotone", "--repetitions", "1"]) == 0
    out = capsys.readouterr().out
    assert "priorband, priorband-4 skipped" in out and "asha" in out
    assert "\npriorband " not in out
