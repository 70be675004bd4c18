"""The training loop of one trial, free of Ray: build, train over the budget, evaluate, report.

The caller (the Ray Train worker entry, or a test) passes a `report` function; the loop calls it
at every evaluation point with flat metrics and a state dict worth checkpointing, and once more
at the end. A loss that becomes NaN or infinite stops the trial at once; it is reported as
`status = diverged` with `val/loss = inf` and the loop returns normally so the sweep goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import struct
import sys
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from raysweep.config.trial import TrialConfig
from raysweep.core.records import M, TrialStatus
from raysweep.data import load_splits
from raysweep.devices.base import Placement
from raysweep.models import (
    build_model,
    classifier_param_names,
    count_params,
    flops_per_example,
    ladder_of,
    no_weight_decay_names,
)
from raysweep.train.recipe import adaptive_grad_clip, lr_at, make_optimizer, param_groups, plan_steps, set_lr

__all__ = ["Placement", "Report", "Start", "autocast", "compile_seconds", "evaluate", "run_training"]

Report = Callable[[dict[str, Any], "dict[str, Any] | None"], None]


class Start(Protocol):
    """Where a trial starts from and what it reads, when that is not pre-training's fresh model and
    plain order (fine-tuning: `raysweep.finetune.units.FinetuneStart`). The loop, its schedule,
    checkpoints, resumption and digest are the same."""

    def model(self, splits: Any, place: Placement) -> nn.Module:
        """The model to train, on `place.device`, before any checkpoint is restored into it."""

    def batches(self, splits: Any, *, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of epoch `epoch`'s batches from step `start` of the epoch to its end."""

    def metrics(self, out: dict[str, Any]) -> dict[str, Any]:
        """A report's metrics with the start's own added (called on every report)."""


def run_training(cfg: TrialConfig, report: Report, place: Placement, resume: dict[str, Any] | None = None,
                 start: Start | None = None) -> dict[str, Any]:
    """Train `cfg` over its whole budget and return the final metrics. `start`: a model and an order
    other than pre-training's (fine-tuning); None: a fresh model of `cfg.rung`, the plain order."""
    loop_start = time.perf_counter()
    spec = cfg.spec
    torch.manual_seed(cfg.seed)
    splits = load_splits(spec.data)
    model_kw = {"num_classes": splits.num_classes, "in_chans": splits.in_chans, "image_size": splits.image_size}
    if start is None:
        model = build_model(ladder_of(spec.ladder), cfg.rung, **model_kw).to(place.device)
    else:
        model = start.model(splits, place)
    n_params = count_params(model)
    fpe = flops_per_example(ladder_of(spec.ladder), cfg.rung, **model_kw)
    plan = plan_steps(n_train=len(splits.train), batch_size=spec.batch_size, epochs=cfg.epochs,
                      warmup_fraction=spec.optim.warmup_fraction, eval_points=spec.eval_points)
    def schedule(s: int) -> float:  # the LR of optimiser step s (0-based)
        return lr_at(s, peak=cfg.lr, total_steps=plan.total_steps, warmup_steps=plan.warmup_steps)

    groups, agc_params = param_groups(model, weight_decay=spec.optim.weight_decay,
                                      head_names=classifier_param_names(model),
                                      no_decay_names=no_weight_decay_names(model))
    opt = make_optimizer(groups, lr=cfg.lr, optim=spec.optim)
    step = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        step = int(resume["step"])
        if "rng" in resume:
            torch.set_rng_state(resume["rng"])
    train_model: nn.Module = model
    if place.ddp:
        train_model = nn.parallel.DistributedDataParallel(model)
    if spec.train.compile and not place.lazy:  # XLA compiles the step's graph anyway
        # shares `model`'s parameters; evaluation runs `model` eager
        train_model = typing.cast(nn.Module, torch.compile(train_model))
    amp = autocast(place, spec.train.precision)

    def compiled_s() -> float:  # graph compilation so far in this process: XLA's and torch.compile's
        return place.compile_seconds() + compile_seconds()

    static = {M.MODEL_PARAMS: n_params, M.FLOPS_PER_EXAMPLE: fpe, M.TOTAL_STEPS: plan.total_steps,
              M.MODEL_NUM_CLASSES: splits.num_classes, M.MODEL_IN_CHANS: splits.in_chans,
              M.MODEL_IMAGE_SIZE: splits.image_size}
    train_seconds = float(resume.get("train_seconds", 0.0)) if resume else 0.0
    loop_before = float(resume.get("loop_seconds", 0.0)) if resume else 0.0
    compile_before = float(resume.get("compile_seconds", 0.0)) if resume else 0.0
    compile_start = compiled_s()  # per process: a reused process has compiled before
    restarts = int(resume.get("restarts", 0)) + 1 if resume else 0  # resumed from a checkpoint this often
    data_digest = str(resume.get("data_digest", "")) if resume else ""  # every batch read, in order
    skipped = int(resume.get("data_skipped", 0)) if resume else 0  # examples of corrupt shards left out
    curve: list[tuple[int, float, float]] = []
    window_sum = torch.zeros((), device=place.device)
    window_n = 0
    if resume is not None and "window" in resume:  # a checkpoint between two curve points
        window_sum += resume["window"][0].to(place.device)
        window_n = int(resume["window"][1])
    loss_val = math.nan

    def metrics(status: TrialStatus, val: tuple[float, float] | None) -> dict[str, Any]:
        examples = step * spec.batch_size
        out: dict[str, Any] = {
            **static,
            M.STEP: step,
            M.EPOCH: examples / len(splits.train),
            M.TRAIN_LOSS: loss_val,
            M.LR: schedule(max(step - 1, 0)),
            M.EXAMPLES: examples,
            M.FLOPS: fpe * examples,
            M.CORE_HOURS: place.devices_in_group * train_seconds / 3600.0,
            M.TRAIN_S: train_seconds,  # optimiser steps only (core-hours count this)
            M.LOOP_S: loop_before + time.perf_counter() - loop_start,  # the loop's wall time, all attempts
            M.COMPILE_S: compile_before + compiled_s() - compile_start,
            M.RESTARTS: restarts,
            M.DATA_DIGEST: float(int(data_digest[:12] or "0", 16)),  # 48 bits: exact in a float
            **({M.DATA_SKIPPED: skipped} if skipped else {}),
            M.STATUS: status.value,
            M.CURVE: list(curve),
        }
        if val is not None:
            out[M.VAL_LOSS], out[M.VAL_ACC] = val
        curve.clear()
        return out if start is None else start.metrics(out)

    if resume is not None and step < plan.total_steps:  # tell the driver at once that the trial resumed
        report(metrics(TrialStatus.RUNNING, None), None)
    if step >= plan.total_steps:  # restarted from the final checkpoint: only the final report is owed
        out = metrics(TrialStatus.OK, evaluate(model, splits.val, spec.eval_batch_size, place))
        report(out, None)
        return out

    def state_of(out: dict[str, Any]) -> dict[str, Any]:
        """Everything a restart needs to continue exactly as if it had not stopped (weights_only-safe)."""
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "train_seconds": train_seconds, "loop_seconds": out[M.LOOP_S], "compile_seconds": out[M.COMPILE_S],
                "rng": torch.get_rng_state(), "restarts": restarts, "data_digest": data_digest, "window": (window_sum.detach().cpu(), window_n),
                "data_position": (step // plan.steps_per_epoch, step % plan.steps_per_epoch),  # (epoch, step in it)
                "data_skipped": skipped}

    every_steps, every_s = spec.checkpoint.every_steps, spec.checkpoint.every_minutes * 60.0
    last_checkpoint = time.perf_counter()

    def checkpoint_due(at: int) -> bool:
        """Mid-epoch checkpoints: every N steps, or (at log points, agreed by every rank) after M minutes.
        Every rank must decide alike, since a report is collective; lazy multi-host runs count steps only."""
        if every_steps and at % every_steps == 0:
            return True
        if not every_s or at % plan.log_every:
            return False
        late = time.perf_counter() - last_checkpoint >= every_s
        return _any_rank(late, place) if not (place.lazy and place.data_world > 1) else False

    epoch_seed = cfg.seed
    batches = None
    epoch = step // plan.steps_per_epoch
    skip = step % plan.steps_per_epoch
    t0 = time.perf_counter()
    while step < plan.total_steps:
        if batches is None:
            # resuming mid-epoch seeks to step `skip` of the same order: nothing before it is read again
            if start is None:
                batches = splits.train.batches(spec.batch_size, seed=epoch_seed, epoch=epoch, rank=place.data_rank,
                                               world=place.data_world, start=skip)
            else:
                batches = start.batches(splits, batch_size=spec.batch_size, seed=epoch_seed, epoch=epoch,
                                        rank=place.data_rank, world=place.data_world, start=skip)
            skip = 0
        try:
            x, y = next(batches)
        except StopIteration:
            batches, epoch = None, epoch + 1
            continue
        data_digest = _chain(data_digest, x, y)
        skipped += spec.batch_size // place.data_world - len(y)  # a full share unless a corrupt shard was skipped
        x, y = place.to_device(x), place.to_device(y)
        set_lr(opt, schedule(step))
        train_model.train()
        with amp:
            loss = F.cross_entropy(train_model(x), y, label_smoothing=spec.optim.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.optim.agc_clip > 0:
            adaptive_grad_clip(agc_params, clip=spec.optim.agc_clip, eps=spec.optim.agc_eps)
        opt.step()
        place.sync()
        step += 1
        window_sum += loss.detach()
        window_n += 1
        check_now = not place.lazy or step % plan.log_every == 0 or step == plan.total_steps
        if check_now and _any_rank(not math.isfinite(float(loss.detach())), place):
            train_seconds += time.perf_counter() - t0
            loss_val = float(loss.detach())
            curve.append((step, loss_val, schedule(step - 1)))
            final = metrics(TrialStatus.DIVERGED, (math.inf, 0.0))
            report(final, None)
            return final
        if step % plan.log_every == 0 or step == plan.total_steps:
            loss_val = float(window_sum) / window_n
            curve.append((step, loss_val, schedule(step - 1)))
            window_sum.zero_()
            window_n = 0
        if step not in plan.eval_steps and checkpoint_due(step):
            train_seconds += time.perf_counter() - t0
            out = metrics(TrialStatus.RUNNING, None)
            report(out, state_of(out))
            t0 = last_checkpoint = time.perf_counter()
            continue
        if step in plan.eval_steps:
            train_seconds += time.perf_counter() - t0
            val = evaluate(model, splits.val, spec.eval_batch_size, place)
            if not math.isfinite(val[0]):  # finite training loss but a blown-up eval still diverged
                final = metrics(TrialStatus.DIVERGED, (math.inf, val[1]))
                report(final, None)
                return final
            done = step == plan.total_steps
            out = metrics(TrialStatus.OK if done else TrialStatus.RUNNING, val)
            report(out, state_of(out))
            if done:
                return out
            t0 = last_checkpoint = time.perf_counter()
    raise AssertionError("the loop ends at the last eval step")  # plan.eval_steps always holds total_steps


def autocast(place: Placement, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The training step's autocast: bf16 where the device runs it (cpu; cuda with bf16 support),
    else none (fp32, XLA, an older GPU). Weights, gradients and the optimiser state stay fp32; the
    loss is computed in fp32 (autocast's own rule for cross-entropy)."""
    if precision != "bf16" or place.lazy:
        return contextlib.nullcontext()
    kind = place.device.type
    if kind == "cpu" or (kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return torch.autocast(kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_seconds() -> float:
    """Seconds torch.compile has spent compiling in this process: Dynamo's frames (forward graphs,
    inductor included) and the backward graphs inductor compiles at their first use. 0 without it."""
    utils = sys.modules.get("torch._dynamo.utils")  # not imported: nothing compiled (and no import paid)
    times = getattr(utils, "compilation_time_metrics", None)
    if not isinstance(times, dict):  # a torch without Dynamo's timers: nothing is counted
        return 0.0
    keys = ("_compile.compile_inner", "compile_fx.<locals>.bw_compiler")
    return float(sum(sum(times.get(k, ())) for k in keys))


def _chain(digest: str, x: torch.Tensor, y: torch.Tensor) -> str:
    """An order-sensitive digest of every batch this rank has read: two runs that read the same
    examples in the same order, however often restarted, end with the same digest."""
    h = hashlib.sha256(digest.encode())
    h.update(y.numpy().tobytes())
    h.update(struct.pack("<d", float(x.double().sum())))
    return h.hexdigest()


def _any_rank(flag: bool, place: Placement) -> bool:
    """True on every rank when it is true on any: all ranks must stop at the same step, or the
    others would block in the next all-reduce and in Ray Train's report."""
    if place.world == 1 or not torch.distributed.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def evaluate(model: nn.Module, val_set: Any, batch_size: int, place: Placement) -> tuple[float, float]:
    """Unsmoothed cross-entropy and top-1 over the whole validation split (fixed batch, masked tail)."""
    model.eval()
    loss_sum = torch.zeros((), device=place.device, dtype=torch.float64)
    correct = torch.zeros((), device=place.device, dtype=torch.float64)
    n = 0
    for x, y in val_set.batches(batch_size, seed=0, epoch=0, drop_last=False, shuffle=False):
        real = len(y)
        if place.lazy and real < batch_size:  # keep one static shape for the XLA compiler
            pad = batch_size - real
            x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
            y = torch.cat([y, y.new_zeros(pad)])
        x, y = x.to(place.device), y.to(place.device)
        logits = model(x).float()
        mask = (torch.arange(len(y), device=place.device) < real).to(logits.dtype)
        loss_sum += (F.cross_entropy(logits, y, reduction="none") * mask).sum().double()
        correct += ((logits.argmax(1) == y).to(logits.dtype) * mask).sum().double()
        n += real
        place.sync()
    loss = float(loss_sum) / n
    return (loss if math.isfinite(loss) else math.inf), float(correct) / n
