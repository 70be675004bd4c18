"""The training step's options (`train.compile`, `train.precision`): the loop trains with each, the
loss stays finite, and torch.compile's time lands in time/compile_s."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M
from raysweep.train.loop import Placement, autocast, run_training

CPU = Placement(torch.device("cpu"))


def cfg(**train: Any) -> TrialConfig:
    spec = spec_from_dict({
        "name": "step", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1.0],
        "data": {"dataset": "mnist5k", "train_subset": 192}, "batch_size": 64, "search": {"searcher": "grid"},
        "train": train,
    })
    return TrialConfig(spec, "nfnet_t0", 1.0, 0.4)


def _train(**train: Any) -> dict[str, Any]:
    torch.set_num_threads(1)
    reports: list[dict[str, Any]] = []
    final = run_training(cfg(**train), lambda m, s: reports.append(m), CPU)
    assert final["status"] == "ok" and final[M.STEP] == 3  # 192 / 64
    assert all(math.isfinite(loss) for _, loss, _ in final[M.CURVE])
    assert math.isfinite(final[M.VAL_LOSS]) and math.isfinite(final[M.TRAIN_LOSS])
    return final


def test_bf16_trains_with_a_finite_loss_and_compiles_nothing() -> None:
    final = _train(precision="bf16")
    assert final[M.COMPILE_S] == 0.0


def test_autocast_is_bf16_on_cpu_and_off_for_fp32_and_lazy_devices() -> None:
    with autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(Placement(torch.device("cpu"), lazy=True), "bf16"):  # XLA: its own precision rules
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compile_trains_and_counts_its_compile_time(precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's compile path: the model is compiled, trains, and Dynamo's time is counted. Inductor's
    C++ code generation takes 10-30 minutes for an NFNet step on this 2-core machine, so the test
    compiles with Dynamo's `eager` backend (the same tracing, guards and timers; no C++)."""
    real = torch.compile
    calls: list[object] = []

    def eager_compile(model: Any, **kw: Any) -> Any:
        calls.append(model)
        return real(model, backend="eager", **kw)

    monkeypatch.setattr(torch, "compile", eager_compile)
    final = _train(compile=True, precision=precision)
    assert len(calls) == 1  # the training model, once
    assert final[M.COMPILE_S] > 0
    assert final[M.TRAIN_S] >= final[M.COMPILE_S] * 0.5  # the first steps paid for it


def test_compile_seconds_reads_dynamos_timers() -> None:
    """`compile_seconds` reads a private table of torch._dynamo (its compile timers): this fails
    loudly when a torch upgrade renames it."""
    from raysweep.train.loop import compile_seconds

    before = compile_seconds()
    f = torch.compile(lambda x: x * 2 + 1, backend="eager")
    f(torch.ones(3))
    assert compile_seconds() > before
