"""The paper's study as a search space: `--dry-run` plans it without the data, and its TPU-v4
core-hours reproduce both ends of the paper's compute axis (0.4k to 110k core-hours per run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raysweep.cli import main
from raysweep.config import load_spec
from raysweep.core import cost
from raysweep.core.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "search_spaces" / "paper_nfnet.yaml"


def test_core_hours_at_the_stated_peak_and_utilisation() -> None:
    assert cost.TPU_V4.peak_flops_per_core == 137.5e12
    one_core_hour = 137.5e12 * 0.36 * 3600
    assert cost.core_hours(one_core_hour) == pytest.approx(1.0)
    assert cost.core_hours(one_core_hour, utilisation=0.72) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="utilisation"):
        cost.core_hours(1.0, utilisation=0)
    assert [cost.format_hours(h) for h in (0.0123, 322.4, 108_400, 3.54e6)] == ["0.0123", "322", "108k", "3.54M"]


def test_the_paper_space_dry_runs_without_its_data_and_matches_the_papers_costs(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert not Path(load_spec(PAPER).data.path or "").exists()  # the test is only meaningful without JFT
    assert main(["run", "--dry-run", str(PAPER)]) == 0
    out = capsys.readouterr().out
    assert "ASSUMED from data.assume, not read: 4,000,000,000 train examples, 30,000 classes" in out
    assert "one v4-16 slice (TPU-V4 2x2x2: 8 chips, 2 hosts)" in out
    assert "275 TFLOP/s bf16 per chip, 2 cores per chip (137.5 TFLOP/s per core), at 36% utilisation" in out
    assert "36 cells, about 72 trials" in out
    assert re.search(r"^  grid +6 trials per cell, +216 trials: .* core-hours", out, re.MULTILINE)
    assert re.search(r"^  monotone +2 trials per cell, +72 trials: .* core-hours", out, re.MULTILINE)

    def core_hours(cell: str) -> float:
        row = next(line for line in out.splitlines() if line.startswith(cell + " "))
        text = row.split()[-2]  # the v4 core-h/trial column
        return float(text.rstrip("kM")) * {"k": 1e3, "M": 1e6}.get(text[-1], 1)

    # PAPER.md's calibration: F0 at 0.25 epochs about 0.4k, F7+ at 8 epochs about 110k core-hours
    assert 250 <= core_hours("nfnet_f0@0.25") <= 450
    assert 95e3 <= core_hours("nfnet_f7plus@8") <= 125e3


def test_a_real_run_still_needs_the_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(PAPER)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{PAPER}: data.path: expected a folder of class folders" in err


def test_without_an_assumption_the_dry_run_says_what_would_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dry-run", str(PAPER), "--set", "data.assume=null"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a dry run can plan without it from data.assume" in err


@pytest.mark.parametrize("value, key", [("{train_examples: 0, num_classes: 10}", "data.assume.train_examples"),
                                        ("{train_examples: 4.0e9, num_classes: 10}", "data.assume.train_examples"),
                                        ("{train_examples: 100, num_classes: 1}", "data.assume.num_classes"),
                                        ("{train_examples: 100, num_classes: 10, in_chans: 4}", "data.assume.in_chans"),
                                        ("{train_examples: 100}", "data.assume.num_classes")])
def test_a_bad_assumption_names_its_key(value: str, key: str) -> None:
    with pytest.raises(SpecError, match=re.escape(f": {key}: ")):
        load_spec(PAPER, [f"data.assume={value}"])
