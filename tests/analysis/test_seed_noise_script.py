"""benchmarks/study/seed_noise.py on planted studies: one seed a cell, then some cells run again with
known noise; the pooled noise is recovered, a clear best cell wins every redraw, a tie splits them,
and a table without replicated seeds is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from raysweep.analysis.runs import ComputeAxis, Runs
from raysweep.analysis.testing import Surface, planted_runs, write_csv
from tests.benchmark_scripts import load_script


@pytest.fixture(scope="module")
def sn() -> ModuleType:
    return load_script("study/seed_noise")


def _study(at: dict[str, list[float]]) -> Runs:
    """One seed a run (almost noiseless, every cell's loss at least 1), and at the best LR of each cell
    named in `at` the losses given (seed 0 first, then seeds 1, 2, ...); its other LRs well above."""
    one = planted_runs(Surface(), params=(10_000, 30_000, 100_000), epochs=(1, 2, 4, 8), lrs=(0.1, 0.2, 0.4),
                       seeds=1, noise=1e-4)
    best = {c.name: c for c in one.cells()}
    rows = []
    for r in one.runs:
        name = f"{r.model}@{r.epochs:g}"
        if name not in at:
            rows.append(dataclasses.replace(r, val_loss=max(r.val_loss, 1.0)))
        elif r.lr != best[name].best_lr:
            rows.append(dataclasses.replace(r, val_loss=at[name][0] * 1.5))
        else:
            rows += [dataclasses.replace(r, seed=str(s), val_loss=x) for s, x in enumerate(at[name])]
    return dataclasses.replace(one, runs=tuple(rows))


def _drawn(mean: float, noise: float, n: int, seed: int) -> list[float]:
    return list(mean * np.exp(np.random.default_rng(seed).normal(0, noise, n)))


def test_the_pooled_noise_is_the_planted_noise(sn: ModuleType) -> None:
    runs = _study({"m2@4": _drawn(0.30, 0.02, 31, 1), "m2@8": _drawn(0.31, 0.02, 31, 2),
                   "m1@8": _drawn(0.33, 0.02, 31, 3)})
    groups = sn.replicated(runs)
    assert [(g.model, g.epochs) for g in groups] == [("m1", 8.0), ("m2", 4.0), ("m2", 8.0)]
    assert all(len(g.losses) == 31 for g in groups)
    assert sn.near_best(runs, groups) == groups
    assert sn.pooled_rel_sd(groups) == pytest.approx(0.02, rel=0.2)


def test_a_clear_best_wins_every_redraw_and_a_tie_splits_them(sn: ModuleType) -> None:
    clear = _study({"m2@4": _drawn(0.30, 0.005, 5, 1), "m2@8": _drawn(0.32, 0.005, 5, 2)})
    noise = sn.pooled_rel_sd(sn.replicated(clear))
    rs = sn.rivals(clear, noise, draws=300)
    assert rs[0].cell == "m2@4" and rs[0].best_share > 0.99 and math.isnan(rs[0].z)
    assert all(r.loss <= rs[0].loss * (1 + sn.NEAR) for r in rs)
    spread = [0.0, -0.01, 0.01, 0.005, -0.005]  # the same seeds' spread around means 0.1% apart
    tie = _study({"m2@4": [0.300 + d for d in spread], "m2@8": [0.3003 + d for d in spread]})
    noise = sn.pooled_rel_sd(sn.replicated(tie))
    rs = sn.rivals(tie, noise, draws=300)
    shares = {r.cell: r.best_share for r in rs}
    assert shares["m2@4"] > 0.1 and shares["m2@8"] > 0.1 and abs(rs[1].z) < 2
    assert sum(shares.values()) <= 1 + 1e-9


def test_report_and_refusal(sn: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _study({"m2@4": [0.30, 0.297, 0.304]})
    path = write_csv(runs, tmp_path / "s.csv")
    forecast = tmp_path / "f.json"
    forecast.write_text(json.dumps([{"table": "s.csv", "law": "chinchilla",
                                     "predictions": [{"cell": "m2@8", "parametric_err": -0.05, "rung_off": 0}]}]))
    out = tmp_path / "out.json"
    assert sn.main([str(path), "--forecast", str(forecast), "--draws", "50", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["forecast"][0]["err_in_noise"] == pytest.approx(math.log1p(-0.05) / data["pooled_rel_sd"])
    assert data["rivals"][0]["z"] is None and "pooled seed noise" in capsys.readouterr().out
    one = write_csv(planted_runs(Surface(), params=(10_000, 30_000), epochs=(1, 2), seeds=1), tmp_path / "one.csv")
    assert sn.main([str(one)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one.csv" in err[0] and "seed" in err[0]
    assert sn.main([str(path), "--forecast", str(tmp_path / "missing.json")]) == 2


def test_cells_use_the_seed_mean(sn: ModuleType) -> None:
    runs = _study({"m2@4": [0.30, 0.29, 0.31, 0.30]})
    cell = next(c for c in runs.cells(ComputeAxis.FLOPS) if c.name == "m2@4")
    assert cell.seeds == 4 and cell.loss == pytest.approx(0.30)
