"""The fine-tuning sweep's analysis on hand-built rows with known answers: the best fine-tuning LR,
the power law's exponent, the finding-4 table's difference and paired p (checked against scipy), the
verdict that flips with the data, and the thin cases (one frontier point, missing neighbours, only
baselines, failed rows, one seed) that must be said in words, not raised."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from scipy.stats import ttest_rel

from raysweep.analysis import FinetuneAnalysis, write_finetune_analysis
from raysweep.analysis.finetune import (
    LARGER_LR,
    LARGER_MODEL,
    LOSS_OPTIMAL,
    NEIGHBOURS,
    NOT_ENOUGH,
    SMALLER_MODEL,
    aggregate,
    best_lr,
    compare,
    finding4_verdict,
    fit_power_law,
    ok_rows,
)
from raysweep.core.records import TrialStatus
from raysweep.results.rows import FinetuneRow

OK = TrialStatus.OK.value


def row(cell: str, lr: float, seed: int, top1: float, *, flops: float = 1e12, why: tuple[tuple[str, str], ...] = (),
        k: int = 1, src_lr: float = 0.1, status: str = OK, model: str = "r0") -> FinetuneRow:
    """A fine-tuning trial of checkpoint `cell lr=src_lr` (cell "": the baseline of rung `model`)."""
    model = cell.split("@")[0] if cell else model
    return FinetuneRow(model=model, lr=lr, seed=seed, repeats=k, status=status,
                       top1=top1 if status == OK else math.nan, loss=1.0, flops=1e10,
                       pretrain_flops=flops if cell else 0.0, source_cell=cell,
                       source_lr=src_lr if cell else math.nan, reasons=why)


def seeds(cell: str, top1s: list[float], **kw) -> list[FinetuneRow]:  # type: ignore[no-untyped-def]
    lr = kw.pop("lr", 0.01)
    return [row(cell, lr, s, t, **kw) for s, t in enumerate(top1s)]


OPT = (0.80, 0.82, 0.81)
GOOD = (0.83, 0.84, 0.82)  # better than OPT on every seed
BAD = (0.78, 0.80, 0.80)  # worse than OPT on every seed


def level(point: str, flops: float, larger: tuple[float, ...], k: int = 1) -> list[FinetuneRow]:
    """One compute level: the loss-optimal `point` and its larger-model neighbour `big@...`."""
    big = point.replace("r", "big")
    return (seeds(point, list(OPT), flops=flops, why=((LOSS_OPTIMAL, point),), k=k)
            + seeds(big, list(larger), flops=flops * 1.1, why=((LARGER_MODEL, point),), k=k))


def test_the_why_names_are_the_selections() -> None:
    from raysweep.finetune.select import Why

    assert {LOSS_OPTIMAL, *NEIGHBOURS} <= {w.value for w in Why}


def test_best_lr_is_the_highest_mean_over_seeds_per_checkpoint_and_k() -> None:
    rows = (seeds("a@4", [0.80, 0.90], lr=0.1) + seeds("a@4", [0.86, 0.85], lr=0.01)  # means 0.85 vs 0.855
            + seeds("a@4", [0.70, 0.70], lr=0.1, k=2) + seeds("a@4", [0.60, 0.65], lr=0.01, k=2))
    best = best_lr(aggregate(rows))
    assert best[("a@4 lr=0.1", 1)].lr == 0.01
    assert best[("a@4 lr=0.1", 1)].mean == pytest.approx(0.855)
    assert best[("a@4 lr=0.1", 2)].lr == 0.1
    assert best[("a@4 lr=0.1", 1)].n == 2


def test_fit_recovers_a_planted_exponent_at_k1() -> None:
    computes = [1e12, 1e13, 1e14, 1e15, 1e16]
    rows = []
    for i, c in enumerate(computes):
        cell = f"r{i}@4"
        top1 = 1 - 0.5 * c**-0.1
        rows += seeds(cell, [top1, top1], flops=c, why=((LOSS_OPTIMAL, cell),))
        rows += seeds(cell, [top1 - 0.05] * 2, lr=0.1, flops=c, why=((LOSS_OPTIMAL, cell),))  # a worse LR
        rows += seeds(cell, [0.5, 0.5], flops=c, why=((LOSS_OPTIMAL, cell),), k=4)  # k=4 ignored: k=1 exists
    fit = fit_power_law(aggregate(rows), replicates=50)
    assert fit.ok and fit.repeats == 1 and fit.n == 5
    assert fit.b == pytest.approx(-0.1, abs=1e-9)
    assert fit.a == pytest.approx(0.5, rel=1e-6)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.b_ci.lo == pytest.approx(-0.1, abs=1e-9) and fit.b_ci.hi == pytest.approx(-0.1, abs=1e-9)
    assert fit.bootstrap == "seeds"
    one_seed = fit_power_law(aggregate([r for r in rows if r.seed == 0]), replicates=50)
    assert one_seed.bootstrap == "points" and one_seed.b == pytest.approx(-0.1, abs=1e-9)
    assert one_seed.b_ci.lo == pytest.approx(-0.1, abs=1e-9) and one_seed.b_ci.hi == pytest.approx(-0.1, abs=1e-9)
    only_k4 = fit_power_law(aggregate([r for r in rows if r.repeats == 4]), replicates=10)
    assert only_k4.repeats == 4 and only_k4.b == pytest.approx(0.0, abs=1e-9)


def test_finding4_difference_and_paired_p_match_scipy() -> None:
    rows = level("r1@4", 1e12, GOOD) + seeds("", [0.70, 0.71, 0.72])  # r0's baseline: no rung compared here
    (c,), missing = compare(aggregate(rows))
    assert c.why == LARGER_MODEL and c.point == "r1@4" and c.n_pairs == 3
    assert c.diff_pp == pytest.approx(100 * (sum(GOOD) - sum(OPT)) / 3)
    assert c.p == pytest.approx(ttest_rel(GOOD, OPT).pvalue)
    assert math.isnan(c.optimal_gain_pp)  # r1 has no baseline of its own
    assert any("larger-LR" in m for m in missing) and any("smaller-model" in m for m in missing)


def test_neighbours_without_their_loss_optimal_checkpoint_are_named() -> None:
    rows = level("r1@4", 1e12, GOOD)
    rows = [r if r.source_cell == "big1@4" else row("r1@4", 0.01, r.seed, 0.0, status=TrialStatus.FAILED.value,
                                                     why=r.reasons) for r in rows]
    comparisons, missing = compare(aggregate(ok_rows(rows)[0]))
    assert not comparisons
    (gap,) = missing
    assert gap.startswith("r1@4 (k=1): its neighbours ran but the loss-optimal checkpoint has no ok run"), gap


def test_gain_over_the_baseline_of_the_same_rung_and_k() -> None:
    rows = level("r1@4", 1e12, GOOD) + [row("", 0.01, s, 0.70, model="r1") for s in range(3)]
    (c,), _ = compare(aggregate(rows))
    assert c.optimal_gain_pp == pytest.approx(100 * (sum(OPT) / 3 - 0.70))
    assert math.isnan(c.neighbour_gain_pp)


def test_the_verdict_flips_with_the_data() -> None:
    better = level("r1@4", 1e12, GOOD) + level("r2@4", 1e13, GOOD) + level("r3@4", 1e14, BAD)
    worse = level("r1@4", 1e12, BAD) + level("r2@4", 1e13, BAD) + level("r3@4", 1e14, GOOD)
    yes = finding4_verdict(compare(aggregate(better))[0])
    no = finding4_verdict(compare(aggregate(worse))[0])
    assert yes.startswith("Finding 4 shows here") and "at 2 of 3 compute levels" in yes, yes
    assert no.startswith("Finding 4 does not show here") and "at 1 of 3 compute levels" in no, no
    good_sig, bad_sig = (int(ttest_rel(x, OPT).pvalue < 0.05) for x in (GOOD, BAD))
    worse = f"; significantly worse at {bad_sig}" if bad_sig else ""
    assert f"(significant at p<0.05 at {2 * good_sig}{worse})" in yes, yes
    both_k = finding4_verdict(compare(aggregate(better + level("r1@4", 1e12, BAD, k=2)))[0])
    assert "without repeated augmentation (k=1)" in both_k and "with repeated augmentation (k=2)" in both_k


def test_a_full_sweep_writes_its_files(tmp_path: Path) -> None:
    rows = (level("r1@4", 1e12, GOOD) + level("r2@4", 2e13, BAD) + level("r3@4", 3e14, GOOD)
            + seeds("r2@4", [0.9, 0.91, 0.92], src_lr=0.3, flops=2e13, why=((LARGER_LR, "r2@4"),))
            + seeds("s1@8", [0.7, 0.72, 0.71], flops=1.5e13, why=((SMALLER_MODEL, "r2@4"),))
            + level("r1@4", 1e12, GOOD, k=2)
            + [row("", 0.01, s, 0.6) for s in range(3)]
            + [row("r1@4", 0.3, 9, 0.0, status=TrialStatus.FAILED.value),
               row("r1@4", 0.3, 8, 0.0, status=TrialStatus.DIVERGED.value)])
    a = write_finetune_analysis(rows, tmp_path / "out", title="demo")
    assert isinstance(a, FinetuneAnalysis)
    for p in (a.figure, a.report_path, a.csv_path):
        assert p.exists() and p.stat().st_size > 0, p
    assert a.figure.read_bytes()[:4] == b"\x89PNG"
    assert a.report == a.report_path.read_text()
    assert dict(a.left_out) == {TrialStatus.FAILED.value: 1, TrialStatus.DIVERGED.value: 1}
    assert {c.why for c in a.comparisons} == {LARGER_MODEL, LARGER_LR, SMALLER_MODEL}
    assert "| compute level |" in a.report and "Finding 4" in a.report and "Gain from pre-training" in a.report
    assert a.fit.ok and "Finding 1" in a.finding1
    with open(a.csv_path) as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(a.groups) == 11  # 3 levels x 2, larger LR, smaller model, a k=2 level, baseline
    assert sum(line["baseline"] == "1" for line in lines) == 1


def test_one_frontier_point_and_one_seed_are_said_in_words(tmp_path: Path) -> None:
    rows = [row("r1@4", 0.01, 0, 0.8, why=((LOSS_OPTIMAL, "r1@4"),)),
            row("big1@4", 0.01, 0, 0.85, why=((LARGER_MODEL, "r1@4"),))]
    a = write_finetune_analysis(rows, tmp_path)
    assert not a.fit.ok and NOT_ENOUGH in a.report
    (c,) = a.comparisons
    assert c.n_pairs == 1 and math.isnan(c.p) and "| n/a |" in a.report
    assert "no paired test" in a.finding4
    assert any("larger-LR" in m for m in a.missing)
    assert a.figure.stat().st_size > 0


def test_only_baselines_and_only_failures_never_crash(tmp_path: Path) -> None:
    a = write_finetune_analysis(seeds("", [0.6, 0.62]), tmp_path / "base")
    assert "Only from-scratch baselines" in a.gain and "cannot be judged" in a.finding4
    assert NOT_ENOUGH in a.finding1 and a.figure.stat().st_size > 0
    failed = [row("r1@4", 0.01, 0, 0.0, status=TrialStatus.FAILED.value)]
    b = write_finetune_analysis(failed, tmp_path / "failed")
    assert b.left_out == ((TrialStatus.FAILED.value, 1),) and "No run ended ok" in b.gain
    assert ok_rows(failed)[0] == []
