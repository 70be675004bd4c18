"""The peers (issue 16) replayed as their own code: Tune's ASHA stops exactly the trials its rule
says on a hand-built curve set, Optuna's pruners prune in the replay what they prune driven the
standard way (`study.optimize` raising `TrialPruned`), and the Tune interface the replay stands in
for (the controller's methods, the trial's attributes) is pinned so that an upgrade fails here."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import optuna
import pytest

from raysweep.bench.engine import run_replay
from raysweep.bench.peers import PEERS, _Trial, cell_fracs, optuna_cell, tune_cell
from raysweep.bench.synthetic import write_table
from raysweep.bench.table import load_table

HEADER = "model,model_params,epochs,lr,seed,val_loss,flops,core_hours,curve\n"
# four LRs, four evaluation points; ASHA (reduction factor 2, grace 1, max_t 4) run one trial at a
# time: rungs at 1, 2 and 4 points; a trial stops at a rung when its loss is worse than the median
# (the 50th percentile: 1 - 1/2) of the losses recorded there before it.
CURVES = {0.1: "4,3,2,1", 0.2: "5,4,3,2", 0.4: "3,2.5,1.5,0.5", 0.8: "4.5,4,3.5,3"}


def _curve_table(tmp_path: Path, curves: dict[float, str] = CURVES) -> str:
    lines = []
    for lr, text in curves.items():
        losses = text.split(",")
        points = ";".join(f"{k / len(losses):g}:{v}" for k, v in enumerate(losses, 1))
        lines.append(f"a,10,1,{lr},0,{losses[-1]},100,,{points}\n")
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "".join(lines))
    return str(path)


def test_asha_stops_exactly_the_trials_its_rule_says(tmp_path: Path) -> None:
    table = load_table(_curve_table(tmp_path))
    cell = next(iter(table.lattice.cells()))
    run = tune_cell(table, cell, PEERS["asha-rf2"], concurrency=1)
    # lr 0.1 runs first, alone at every rung: it trains the whole budget. lr 0.2: 5 at point 1 is worse
    # than the median of {4}: stopped at 1/4. lr 0.4: 3 beats the median of {4, 5} (4.5) and 2.5 the
    # median of {3}: it trains to the end. lr 0.8: 4.5 is worse than the median of {4, 5, 3} (4): stopped.
    assert run.stops == [(0, 1.0), (1, 0.25), (2, 1.0), (3, 0.25)]
    assert run.cost == pytest.approx(2.5)  # full trials of the cell: every run costs the same
    assert run.settled == 2 and run.trials == 4


def test_asha_with_two_in_flight_and_hyperband_settle_and_cost_less_than_the_grid(tmp_path: Path) -> None:
    table = load_table(_curve_table(tmp_path))
    cell = next(iter(table.lattice.cells()))
    for name in ("asha", "asha-rf2", "hyperband", "hyperband-rf2"):
        run = tune_cell(table, cell, PEERS[name], concurrency=2)
        assert 0 < run.cost <= 4 and run.settled in range(4), name
        assert all(0 < f <= 1 for _, f in run.stops), name


def _direct(table_csv: str, pruner: optuna.pruners.BasePruner, n_trials: int) -> list[tuple[str, int]]:
    """The study driven the standard way: an objective that reports and raises TrialPruned."""
    table = load_table(table_csv)
    cell = next(iter(table.lattice.cells()))
    lrs, fracs = table.lattice.lrs, cell_fracs(table, cell)

    def objective(trial: optuna.Trial) -> float:
        i = lrs.index(trial.suggest_categorical("lr", list(lrs)))
        for k, frac in enumerate(fracs, 1):
            loss = table.loss_at(cell, i, frac)
            assert loss is not None
            trial.report(loss, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=3), pruner=pruner,
                                study_name="raysweep-peer")  # HyperbandPruner's brackets hash the name
    study.optimize(objective, n_trials=n_trials)
    return [(t.state.name, len(t.intermediate_values)) for t in study.trials]


@pytest.mark.parametrize("make", [lambda: optuna.pruners.SuccessiveHalvingPruner(),
                                  lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=2),
                                  lambda: optuna.pruners.HyperbandPruner()])
def test_optuna_pruners_prune_in_the_replay_what_they_prune_directly(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "s.csv")
    write_table(path, n_models=1, epochs=(1.0,), seeds=1, eval_points=8)
    table = load_table(path)
    cell = next(iter(table.lattice.cells()))
    with _quiet():
        run = optuna_cell(table, cell, PEERS["tpe-sh"], seed=3, n_trials=12, pruner=make())
        direct = _direct(path, make(), 12)
    replayed = [("COMPLETE" if f == 1.0 else "PRUNED", round(f * 8)) for _, f in run.stops]
    # a trial pruned at its last point ran the whole budget too: compare the points each reported
    assert [n for _, n in replayed] == [n for _, n in direct]
    assert any(state == "PRUNED" for state, _ in direct)  # the example does prune
    assert run.cost == pytest.approx(sum(n for _, n in direct) / 8)


class _quiet:
    def __enter__(self) -> None:
        self.level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        optuna.logging.set_verbosity(self.level)


def test_peers_score_alike_on_a_synthetic_table_with_curves(tmp_path: Path) -> None:
    path = str(tmp_path / "p.csv")
    write_table(path, n_models=2, epochs=(0.5, 1.0), seeds=2, eval_points=4)
    result = run_replay(path, searchers=["monotone", "asha-rf2", "tpe-sh"], repetitions=2)
    for name, entry in result["searchers"].items():
        assert entry["full_trials_per_cell"] > 0 and entry["mean_regret"] is not None, name
    # monotone spends whole trials: its full-trial count is its trial count (every LR costs alike here)
    mono = result["searchers"]["monotone"]
    assert mono["full_trials_per_cell"] == pytest.approx(mono["mean_trials_per_cell"])
    sh = result["searchers"]["tpe-sh"]
    assert sh["full_trials_per_cell"] < sh["mean_trials_per_cell"]  # it pruned some trials early
    # ASHA over a grid in ascending LR order, on curves whose early optimum is the shorter budget's
    # (larger LRs look better early): each later trial beats the rung's median, so none stops
    asha = result["searchers"]["asha-rf2"]
    assert asha["full_trials_per_cell"] == pytest.approx(asha["mean_trials_per_cell"])


def test_an_old_table_replays_peers_as_whole_trials(tmp_path: Path) -> None:
    path = str(tmp_path / "o.csv")
    write_table(path, n_models=1, epochs=(0.5,), seeds=1)  # no curves
    entry = run_replay(path, searchers=["asha"], repetitions=1)["searchers"]["asha"]
    assert entry["full_trials_per_cell"] == pytest.approx(entry["mean_trials_per_cell"])
    assert not math.isnan(entry["hit_rate"])


def test_the_tune_interface_the_replay_stands_in_for() -> None:
    """Private surface: the schedulers call only `get_trials` and `stop_trial` on the controller and
    read only these attributes of a trial; Tune's status names are still these. A change fails here
    (raysweep/bench/peers.py's `_Controller` and `_Trial` then need the same change)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import async_hyperband, hyperband, trial_scheduler

    assert (Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR) == (
        "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR")
    calls, attrs = set(), set()
    for module in (async_hyperband, hyperband, trial_scheduler):
        for node in ast.walk(ast.parse(inspect.getsource(module))):  # code only, not comments
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "tune_controller":
                    calls.add(node.attr)
                elif node.value.id in ("trial", "t"):
                    attrs.add(node.attr)
    assert calls <= {"get_trials", "stop_trial"}, calls
    stand_in = _Trial(0, 0, Trial.PENDING)
    missing = {a for a in attrs if a.islower() and not hasattr(stand_in, a)}
    assert not missing, f"Tune's schedulers read {missing} of a trial; the replay's _Trial lacks them"


def test_cli_prints_flops_per_cell_and_writes_the_pareto_figure(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.bench.pareto import pareto_front
    from raysweep.cli import main

    path = str(tmp_path / "f.csv")
    write_table(path, n_models=1, epochs=(0.5, 1.0), seeds=1, eval_points=4)
    png = tmp_path / "fig" / "pareto.png"
    assert main(["bench", "searcher", "--table", path, "--searchers", "monotone,grid", "--peers", "asha-rf2,tpe-sh",
                 "--repetitions", "1", "--figure", str(png)]) == 0
    out = capsys.readouterr().out
    assert "flops/cell" in out and "asha-rf2" in out and "tpe-sh" in out
    assert png.stat().st_size > 1000
    # the front: nothing beats a point on both axes (lower is better)
    assert pareto_front({"a": (1.0, 0.5), "b": (2.0, 0.1), "c": (2.0, 0.6), "d": (0.5, 0.9)}) == ["d", "a", "b"]
    assert main(["bench", "searcher", "--table", path, "--searchers", "monotone", "--peers", "none"]) == 0
    assert "asha" not in capsys.readouterr().out


def test_the_regret_axis_goes_logarithmic_only_when_one_method_is_far_off() -> None:
    from raysweep.bench.pareto import log_regret_axis

    assert not log_regret_axis([0.0, 0.26, 0.5, 3.3, 16.0])  # all readable on a linear axis
    assert log_regret_axis([0.0, 0.26, 0.5, 3.3, 266.0])  # one 266% point would flatten the rest
    assert not log_regret_axis([])
