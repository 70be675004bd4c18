"""How `raysweep run` ends: the exit code and the last lines for each way a sweep can end.

A sweep that was asked to stop (--max-trials, Ctrl-C, SIGTERM) and has cells left says how to
continue it. One that ended with cells unsettled although nothing stopped it (Ray Tune ended early:
trials that could not start or report, a cluster that went away), or with a cell whose every trial
failed, did not do its job: one line on stderr each, and exit 1, so that a script can tell."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import pytest

from raysweep.analysis.summary import CellRow
from raysweep.cli.run import report_end
from raysweep.config import load_spec
from raysweep.sweep.closing import SweepOutcome

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "search_spaces/demo.yaml", ["ladder.rungs=[nfnet_t0]"])  # 1 rung x 4 budgets
CELLS = [f"nfnet_t0@{e:g}" for e in SPEC.epochs]


def row(cell: str, *, best_lr: float | None = 0.1, trials: int = 2, failed: int = 0, diverged: int = 0) -> CellRow:
    model, _, epochs = cell.partition("@")
    return CellRow(cell=cell, model=model, epochs=float(epochs), best_lr=best_lr, val_loss=0.5 if best_lr else float("inf"),
                   val_acc=0.8, trials=trials, diverged=diverged, failed=failed, flops=1e9, best_run_id="")


def outcome(rows: list[CellRow], **over: object) -> SweepOutcome:
    base = SweepOutcome("parent", "", rows, sum(r.trials for r in rows), 10.0, 1.0, 0.9, 0.1, 5.0)
    return SweepOutcome(**{**base.__dict__, **over})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:  # one store for the module: creating one takes seconds
    return f"sqlite:///{tmp_path_factory.mktemp('run_end') / 'mlflow.db'}"


@pytest.fixture
def end(uri: str, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]

    def finish(out: SweepOutcome, *, max_trials: int | None = None) -> tuple[int, str, str]:
        code = report_end(SPEC, argparse.Namespace(max_trials=max_trials), uri, out)
        captured = capsys.readouterr()  # stderr: raysweep's lines only (MLflow logs creating its store there)
        return code, captured.out, "".join(f"{line}\n" for line in captured.err.splitlines() if line.startswith("raysweep"))

    return finish


def test_a_whole_sweep_exits_0_and_says_nothing_about_resuming(end) -> None:  # type: ignore[no-untyped-def]
    code, out, err = end(outcome([row(c) for c in CELLS]))
    assert code == 0 and err == ""
    assert "cells settled" not in out and "MLflow parent run parent" in out


def test_a_sweep_stopped_by_max_trials_says_how_to_continue_and_exits_0(end) -> None:  # type: ignore[no-untyped-def]
    code, out, err = end(outcome([row(CELLS[0])], unsettled=tuple(CELLS[1:])), max_trials=2)
    assert code == 0 and err == ""
    assert "the sweep stopped with 1 of 4 cells settled: continue it with the same command plus --resume" in out


def test_an_interrupted_sweep_exits_with_the_signal_code_and_no_error(end) -> None:  # type: ignore[no-untyped-def]
    code, out, err = end(outcome([row(CELLS[0])], unsettled=tuple(CELLS[1:]), interrupted=True,
                                 interrupted_by=signal.SIGTERM))
    assert code == 143 and "cells settled: continue it" in out
    assert "error" not in err


def test_a_sweep_cut_short_with_nothing_stopping_it_is_an_error(end) -> None:  # type: ignore[no-untyped-def]
    code, out, err = end(outcome([row(CELLS[0])], unsettled=tuple(CELLS[1:])))
    assert code == 1 and "the sweep stopped with 1 of 4 cells settled" in out
    (line,) = err.strip().splitlines()
    assert line.startswith("raysweep: error: the sweep ended with 3 of 4 cells unsettled (nfnet_t0@1, nfnet_t0@2, "
                           "nfnet_t0@4) though nothing stopped it")
    assert line.endswith("continue it with the same command plus --resume")


def test_a_cell_whose_every_trial_failed_is_an_error_but_a_diverged_one_is_a_result(end) -> None:  # type: ignore[no-untyped-def]
    rows = [row(CELLS[0]), row(CELLS[1], best_lr=None, trials=3, failed=3),
            row(CELLS[2], best_lr=None, trials=2, diverged=2), row(CELLS[3])]
    code, out, err = end(outcome(rows, all_failed=(CELLS[1],)))
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("raysweep: error: every trial of 1 cell(s) failed (nfnet_t0@1): nothing trained there")
    assert "cells settled" not in out  # every cell is settled: a resume would run nothing
    code, _, err = end(outcome([row(CELLS[0]), row(CELLS[2], best_lr=None, trials=2, diverged=2)] + [row(CELLS[3])]))
    assert code == 0 and err == ""


def test_a_long_list_of_cells_stays_one_short_line(end) -> None:  # type: ignore[no-untyped-def]
    many = tuple(f"vit_t{i}@{e:g}" for i in range(4) for e in (0.25, 0.5, 1, 2, 4))
    code, _, err = end(outcome([], unsettled=many))
    (line,) = err.strip().splitlines()
    assert code == 1 and "and 14 more" in line and len(line) < 400
