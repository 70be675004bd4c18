"""The training loop without Ray: evaluation points, divergence, and resume equivalence."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from raysweep.config import spec_from_dict
from raysweep.train.loop import Placement, run_training
from raysweep.trial import TrialConfig

CPU = Placement(torch.device("cpu"))


def cfg(lr: float = 0.4, epochs: float = 2.0, **optim: Any) -> TrialConfig:
    spec = spec_from_dict({
        "name": "loop", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [epochs],
        "data": {"dataset": "mnist5k", "train_subset": 256}, "batch_size": 64, "optim": optim,
        "search": {"searcher": "grid"},
    })
    return TrialConfig(spec, "nfnet_t0", epochs, lr)


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def __call__(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        self.reports.append((metrics, copy.deepcopy(state)))


def test_reports_at_each_epoch_and_the_end_with_compute_counts() -> None:
    torch.set_num_threads(1)
    rec = Recorder()
    final = run_training(cfg(), rec, CPU)
    steps = [m["step"] for m, _ in rec.reports]
    assert steps == [4, 8]  # 256 / 64 = 4 steps per epoch, 2 epochs
    assert [m["status"] for m, _ in rec.reports] == ["running", "ok"]
    assert final["compute/examples"] == 8 * 64
    assert final["compute/flops"] == final["flops_per_example"] * 8 * 64
    assert final["epoch"] == 2.0
    assert all(s is not None and s["step"] == m["step"] for m, s in rec.reports)
    curve_steps = [p[0] for m, _ in rec.reports for p in m["curve"]]
    assert curve_steps == list(range(1, 9))  # one train-loss point per step here (8 steps < 50)
    assert 0 < final["val/loss"] < 5 and 0 <= final["val/acc"] <= 1


def test_resuming_from_the_epoch_one_checkpoint_gives_the_same_weights() -> None:
    torch.set_num_threads(1)
    full = Recorder()
    run_training(cfg(), full, CPU)
    mid_state = full.reports[0][1]
    resumed = Recorder()
    run_training(cfg(), resumed, CPU, resume=mid_state)
    assert [m["step"] for m, _ in resumed.reports] == [8]
    a, b = full.reports[-1][1]["model"], resumed.reports[-1][1]["model"]  # type: ignore[index]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.reports[-1][0]["val/loss"] == full.reports[-1][0]["val/loss"]


def test_resuming_from_the_final_checkpoint_only_reports() -> None:
    full = Recorder()
    run_training(cfg(epochs=1.0), full, CPU)
    again = Recorder()
    out = run_training(cfg(epochs=1.0), again, CPU, resume=full.reports[-1][1])
    assert len(again.reports) == 1 and out["status"] == "ok" and out["step"] == 4


def test_divergence_stops_at_once_and_reports_inf() -> None:
    rec = Recorder()
    out = run_training(cfg(lr=1e6, epochs=2.0, agc_clip=0.0), rec, CPU)
    assert out["status"] == "diverged" and math.isinf(out["val/loss"])
    assert out["step"] < 8  # stopped before the budget ended
    assert rec.reports[-1][1] is None  # nothing worth checkpointing
    assert not math.isfinite(rec.reports[-1][0]["train/loss"])
