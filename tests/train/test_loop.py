"""The training loop without Ray: evaluation points, divergence, and resume equivalence."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M
from raysweep.train.loop import Placement, run_training

CPU = Placement(torch.device("cpu"))


def cfg(lr: float = 0.4, epochs: float = 2.0, eval_points: int = 0, **optim: Any) -> TrialConfig:
    spec = spec_from_dict({
        "name": "loop", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [epochs],
        "data": {"dataset": "mnist5k", "train_subset": 256}, "batch_size": 64, "optim": optim,
        "search": {"searcher": "grid"}, "eval_points": eval_points,
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
    # the shape the model was built at, which a later stage rebuilds it from (MNIST padded to 32)
    assert (final[M.MODEL_NUM_CLASSES], final[M.MODEL_IN_CHANS], final[M.MODEL_IMAGE_SIZE]) == (10, 1, 32)
    assert all(s is not None and s["step"] == m["step"] for m, s in rec.reports)
    curve_steps = [p[0] for m, _ in rec.reports for p in m["curve"]]
    assert curve_steps == list(range(1, 9))  # one train-loss point per step here (8 steps < 50)
    assert 0 < final["val/loss"] < 5 and 0 <= final["val/acc"] <= 1


def test_eval_points_evaluate_inside_a_short_budget() -> None:
    torch.set_num_threads(1)
    rec = Recorder()
    run_training(cfg(epochs=1.0, eval_points=4), rec, CPU)
    # 4 steps in the budget, 4 evenly spaced points: a validation loss after every step
    assert [m["step"] for m, _ in rec.reports] == [1, 2, 3, 4]
    assert all(math.isfinite(m["val/loss"]) for m, _ in rec.reports)
    assert rec.reports[-1][0][M.TOTAL_STEPS] == 4  # the curve's denominator `raysweep table` reads


def test_resuming_from_the_epoch_one_checkpoint_gives_the_same_weights() -> None:
    torch.set_num_threads(1)
    full = Recorder()
    run_training(cfg(), full, CPU)
    mid_state = full.reports[0][1]
    resumed = Recorder()
    run_training(cfg(), resumed, CPU, resume=mid_state)
    # at once a report that it resumed (no checkpoint), then the rest of the budget
    assert [(m["step"], s is not None) for m, s in resumed.reports] == [(4, False), (8, True)]
    assert resumed.reports[0][0]["restarts"] == 1
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


def test_mid_epoch_checkpoints_resume_bit_identical_with_the_same_data_order() -> None:
    """Checkpoints every 3 steps (inside 4-step epochs); resuming from each one of them ends with the
    same weights, loss, train-loss curve and data-order digest as the uninterrupted run."""
    torch.set_num_threads(1)
    spec = cfg().spec
    spec = type(spec)(**{**spec.__dict__, "checkpoint": type(spec.checkpoint)(every_steps=3, every_minutes=0)})
    c = TrialConfig(spec, "nfnet_t0", 2.0, 0.4)
    full = Recorder()
    run_training(c, full, CPU)
    ckpts = [(m["step"], s) for m, s in full.reports if s is not None]
    assert [st for st, _ in ckpts] == [3, 4, 6, 8]  # every 3 steps, plus the epoch boundaries
    final = full.reports[-1][0]
    curve = {p[0]: p[1] for m, _ in full.reports for p in m["curve"]}
    for step, state in ckpts[:-1]:
        resumed = Recorder()
        out = run_training(c, resumed, CPU, resume=state)
        assert out["val/loss"] == final["val/loss"] and out["data/order_digest"] == final["data/order_digest"]
        assert out["compute/examples"] == final["compute/examples"]
        for k, v in full.reports[-1][1]["model"].items():  # type: ignore[index]
            assert torch.equal(v, resumed.reports[-1][1]["model"][k]), (step, k)  # type: ignore[index]
        again = {p[0]: p[1] for m, _ in resumed.reports for p in m["curve"]}
        assert again == {k: v for k, v in curve.items() if k > step}  # no point twice, none lost


def test_the_data_digest_tells_another_order_apart() -> None:
    torch.set_num_threads(1)
    a, b = Recorder(), Recorder()
    spec = cfg(epochs=1.0).spec
    other = type(spec)(**{**spec.__dict__, "seed": 1})
    out_a = run_training(TrialConfig(spec, "nfnet_t0", 1.0, 0.4), a, CPU)
    out_b = run_training(TrialConfig(other, "nfnet_t0", 1.0, 0.4), b, CPU)
    assert out_a["data/order_digest"] != out_b["data/order_digest"]
