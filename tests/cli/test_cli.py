"""The command line: bad input is one line on stderr with exit code 2, and nothing starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)


def test_malformed_yaml_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\nladder: {family: nfnet_cpu, rungs: [nfnet_t0]\nepochs: [1]\n")
    proc = run_cli("run", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"raysweep: error: {bad}: expected valid YAML")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Ray" not in proc.stdout  # nothing was launched


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: demo\nladder: {family: nfnet_cpu, rungs: [nfnet_t0]}\nepochs: [1]\nbatch_sise: 3\n", "batch_sise: unknown key"),
        ("name: demo\nladder: {family: nfnet_cpu, rungs: [nfnet_t0]}\nepochs: [0]\n", "epochs[0]: expected a number > 0"),
        ("name: demo\nladder: {family: nfnet_cpu, rungs: [resnet9000]}\nepochs: [1]\n", "ladder.rungs[0]: expected a rung"),
    ],
)
def test_typos_exit_2_naming_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                          needle: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and needle in err, err


def test_bad_override_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ROOT / "search_spaces/demo.yaml"), "--set", "optim.momentum=high"]) == 2
    assert "optim.momentum: expected a number, got str 'high'" in capsys.readouterr().err


def test_dry_run_prints_cells_trials_and_flops(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dry-run", str(ROOT / "search_spaces/demo.yaml"), "--set", "search.searcher=grid"]) == 0
    out = capsys.readouterr().out
    assert "nfnet_t0@0.5" in out and "nfnet_t2@4" in out
    assert "12 cells, about 84 trials" in out
    assert "training FLOPs" in out
    assert "kept checkpoints: about" in out and "MiB of disk" in out


def test_help_on_every_command() -> None:
    for args in (["--help"], ["run", "--help"], ["ladders", "--help"], ["table", "--help"], ["bench", "searcher", "--help"],
                 ["bench", "curves", "--help"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "usage:" in proc.stdout


def test_ladders_lists_measured_parameter_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ladders", "--family", "nfnet_cpu"]) == 0
    out = capsys.readouterr().out
    assert "nfnet_t0" in out and "23,558" in out


def test_budget_that_buys_no_step_and_missing_folder_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = str(ROOT / "search_spaces/demo.yaml")
    assert main(["run", demo, "--set", "epochs=[0.001, 1]"]) == 2
    err = capsys.readouterr().err
    assert "epochs[0]: an epoch budget of 0.001 buys no optimiser step" in err and err.count("\n") == 1
    missing = tmp_path / "nowhere"
    assert main(["run", demo, "--set", "data.dataset=image_folder", "--set", f"data.path={missing}"]) == 2
    err = capsys.readouterr().err
    assert f"{demo}: data" in err and err.count("\n") == 1


def test_dry_run_with_a_warm_start_prints_the_trend_and_each_cells_first_lr(capsys: pytest.CaptureFixture[str]) -> None:
    table = str(ROOT / "benchmarks/mnist5k_grid_agc0.16.csv")
    assert main(["run", "--dry-run", str(ROOT / "search_spaces/fashion_ladder.yaml"), "--warm-start", table]) == 0
    out = capsys.readouterr().out
    assert "raysweep: warm start: lr ~" in out and f"cells of {table}" in out
    assert "first LR" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("nfnet_t")]
    assert len(rows) == 20
    first = {r[0]: float(r[-1]) for r in rows}
    assert all(0.025 / 4 < v < 1.6 * 4 for v in first.values())
    # held at the earlier study's edge: beyond its largest rung (t2) the forecast stops moving with size
    assert first["nfnet_t3@1"] == first["nfnet_t2@1"]
