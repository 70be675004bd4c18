"""`raysweep analyze` and `raysweep plan` on a small results table the test writes (no Ray, no MLflow):
the outputs exist and hold the fits; bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.analysis.testing import Surface, planted_runs, write_csv
from raysweep.cli import main

ROOT = Path(__file__).resolve().parents[2]
FILES = ("loss_vs_compute.png", "optimal_allocation.png", "lr_vs_epochs.png", "report.md", "fit.json")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = planted_runs(Surface(), params=(10_000, 30_000, 100_000), epochs=(0.5, 1, 2, 4),
                        lrs=(0.1, 0.2, 0.4, 0.8), seeds=2, noise=0.01)
    return write_csv(runs, tmp_path_factory.mktemp("t") / "grid.csv")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("raysweep: error: ")
    return err[0]


def test_analyze_a_table_writes_figures_report_and_fit(table: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["analyze", "--table", str(table), "--out", str(out), "--bootstrap", "20"]) == 0
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    fit = json.loads((out / "fit.json").read_text())
    assert {"slope", "intercept", "r2", "slope_ci"} <= set(fit["frontier"])
    assert fit["frontier"]["slope"] < 0 and 0 < fit["frontier"]["r2"] <= 1
    assert fit["parametric"]["status"] == "ok"
    assert fit["lr_trend"]["p"] < 0.05
    report = (out / "report.md").read_text()
    # the planted law keeps improving with size and budget: the frontier's top is the lattice's corner
    assert "Warning: the frontier sits at an edge of the lattice" in report
    assert "extend the epoch grid beyond 4" in report
    printed = capsys.readouterr().out
    assert "frontier power law" in printed and "warning:" in printed


def test_tpu_axis_and_two_studies_overlay(table: Path, tmp_path: Path) -> None:
    other = planted_runs(Surface(A=60.0), params=(10_000, 30_000, 100_000), epochs=(0.5, 1, 2, 4),
                         lrs=(0.1, 0.2, 0.4, 0.8), seeds=2, name="vit")
    second = write_csv(other, tmp_path / "vit.csv")
    out = tmp_path / "cmp"
    assert main(["analyze", "--table", str(table), "--table", str(second), "--out", str(out),
                 "--compute", "tpu_v4_core_hours", "--bootstrap", "0"]) == 0
    assert (out / "frontiers_overlay.png").exists() and (out / "grid" / "fit.json").exists()
    doc = json.loads((out / "fit.json").read_text())
    assert set(doc["studies"]) == {"grid", "vit"} and doc["matched_compute"]
    level = doc["matched_compute"][-1]
    assert level["envelope"]["grid"] < level["envelope"]["vit"]  # vit's planted A is larger: worse everywhere
    assert "TPU-v4" in doc["studies"]["grid"]["compute_axis"]["label"]
    assert "matched compute" in (out / "comparison.md").read_text()


def test_plan_prints_rung_lr_and_loss(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Surface()
    budget = s.k * 100_000 * 4  # 4 epochs of the largest rung: the lattice's top
    assert main(["plan", "--table", str(table), "--budget", f"{budget:g}", "--bootstrap", "20", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["rung"] in ("m1", "m2") and p["rung_epochs"] > 0
    assert p["budget"] == pytest.approx(budget)
    assert p["loss_parametric_ci"][0] <= p["loss_parametric"] <= p["loss_parametric_ci"][1]
    true = s.loss(p["rung_params"], p["rung_epochs"])
    assert p["loss_parametric"] == pytest.approx(true, rel=0.05)
    # twice the lattice's top: 8 epochs of the largest rung were never measured, so only a bound (exit 3)
    assert main(["plan", "--table", str(table), "--budget", f"{2 * budget:g}", "--bootstrap", "20", "--json"]) == 3
    p = json.loads(capsys.readouterr().out)
    assert p["verdict"] == "bound" and p["loss_parametric"] is None and p["loss_bound"] > 0
    assert main(["plan", "--table", str(table), "--core-hours", "0.01", "--bootstrap", "0"]) in (0, 3)
    text = capsys.readouterr().out
    assert "runs that spend the budget" in text and "learning rate" in text and "predicted val loss" in text


@pytest.mark.parametrize("content, needle", [
    ("model,epochs,lr,val_loss\nm,1,0.1,1.0\n", "header: missing columns model_params, flops"),
    ("model,model_params,epochs,lr,seed,val_loss,flops,core_hours\n", "expected at least one data row"),
    ("model,model_params,epochs,lr,seed,val_loss,flops,core_hours\nm,10,1,fast,0,1.0,5,1\n", "column lr"),
])
def test_bad_tables_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                        needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "never"
    assert main(["analyze", "--table", str(bad), "--out", str(out)]) == 2
    assert needle in one_error_line(capsys)
    assert not out.exists()  # nothing created


def test_other_bad_input_is_one_line_exit_2(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["analyze", "--table", str(table), "--out", str(blocker)]) == 2
    assert "--out: expected a folder" in one_error_line(capsys)
    assert main(["analyze", "--table", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "expected a readable CSV file" in one_error_line(capsys)
    assert main(["plan", "--table", str(table), "--budget", "-5"]) == 2
    assert "--budget: expected a positive number" in one_error_line(capsys)
    assert main(["analyze", "--out", str(tmp_path / "o")]) == 2
    assert "expected --experiment NAME or --table CSV" in one_error_line(capsys)


def test_help_explains_and_a_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    env_py = [sys.executable, "-m", "raysweep"]
    help_text = subprocess.run([*env_py, "analyze", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                               check=True).stdout
    for needle in ("loss_vs_compute.png", "report.md", "fit.json", "tpu_v4_core_hours", "--experiment"):
        assert needle in help_text
    proc = subprocess.run([*env_py, "plan", "--table", str(tmp_path / "nope.csv"), "--budget", "1e9"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
