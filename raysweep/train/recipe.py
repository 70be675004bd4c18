"""The training recipe, free of Ray: schedule, AGC, parameter groups, optimiser, losses.

Smith et al. (2023) pre-train NFNets with SGD + Nesterov momentum, Adaptive Gradient Clipping
(Brock et al. 2021) and a warm-up followed by cosine decay over the whole epoch budget. ViTs are
trained with AdamW instead (`optim.name: adamw`); `make_optimizer` is the one place the choice is
made. Each function here is small and pure so that the unit tests can check it against the formula.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from raysweep.config import OptimSpec


@dataclass(frozen=True)
class StepPlan:
    """How many optimiser steps a budget buys and where to stop for evaluation."""

    total_steps: int  # floor(budget * n_train / batch): the last partial batch is dropped
    warmup_steps: int
    steps_per_epoch: int
    eval_steps: tuple[int, ...]  # after these many steps: every whole epoch inside the budget (and k/eval_points of it), and the end
    log_every: int  # train-loss points for the curve: about 50 per trial
    batch_size: int  # global batch

    @property
    def examples(self) -> int:
        """Examples seen over the whole budget."""
        return self.total_steps * self.batch_size


def plan_steps(*, n_train: int, batch_size: int, epochs: float, warmup_fraction: float,
               eval_points: int = 0) -> StepPlan:
    """Turn an epoch budget (possibly fractional) into steps; the one place durations become steps.
    `eval_points` > 0 adds evaluations after floor(k x total / eval_points) steps, k = 1..eval_points
    (fewer where the budget has fewer steps than that), beside the epoch boundaries."""
    steps_per_epoch = n_train // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"`batch_size <= n_train` must hold, but got (batch_size={batch_size}, n_train={n_train})")
    total = math.floor(epochs * n_train / batch_size + 1e-9)
    if total < 1:
        raise ValueError(
            f"an epoch budget of {epochs:g} buys no optimiser step at batch {batch_size} over {n_train} examples"
        )
    warmup = min(round(warmup_fraction * total), total - 1)  # leave at least one step to decay
    # epoch boundaries counted in examples, like the budget itself: pass k ends at floor(k * n / b)
    evals = [b for k in range(1, int(epochs + 1e-9) + 1) if (b := math.floor(k * n_train / batch_size + 1e-9)) < total]
    evals.append(total)
    if eval_points > 0:
        evals = sorted(set(evals) | {s for k in range(1, eval_points + 1) if (s := k * total // eval_points) > 0})
    return StepPlan(
        total_steps=total,
        warmup_steps=warmup,
        steps_per_epoch=steps_per_epoch,
        eval_steps=tuple(evals),
        log_every=max(1, total // 50),
        batch_size=batch_size,
    )


def lr_at(step: int, *, peak: float, total_steps: int, warmup_steps: int) -> float:
    """Learning rate used for optimiser step `step` (0-based): linear warm-up, then cosine to 0.

    Warm-up reaches `peak` on step warmup_steps - 1; the cosine reaches exactly 0 at step
    total_steps, so the schedule spans exactly the budget whatever its length.
    """
    if step >= total_steps:
        return 0.0
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """Norm per output unit: over all dims but the first for weights; the whole tensor for vectors.

    Matches DeepMind's NFNet reference (`unitwise_norm`), with PyTorch's out-channels-first layout:
    anything that squeezes to a vector (biases, and timm's (C, 1, 1, 1) conv gains) is one unit.
    """
    if x.squeeze().ndim <= 1:
        return x.norm(2)
    return x.norm(2, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_grad_clip(params: Iterable[torch.Tensor], *, clip: float, eps: float = 1e-3) -> None:
    """AGC: if ||G_i|| / max(||W_i||, eps) > clip, scale G_i to clip * max(||W_i||, eps) / ||G_i||."""
    for p in params:
        if p.grad is None:
            continue
        w_norm = unitwise_norm(p.detach()).clamp_min(eps)
        g_norm = unitwise_norm(p.grad.detach())
        max_norm = w_norm * clip
        scale = max_norm / g_norm.clamp_min(1e-6)
        clipped = p.grad * scale
        p.grad.copy_(torch.where(g_norm > max_norm, clipped, p.grad))


def param_groups(model: nn.Module, *, weight_decay: float, head_names: set[str],
                 no_decay_names: set[str]) -> tuple[list[dict], list[torch.Tensor]]:
    """Optimiser groups (no weight decay on `no_decay_names`: gains and biases) and the params AGC
    clips (all but the classifier head)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    agc: list[torch.Tensor] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name in no_decay_names else decay).append(p)
        if name not in head_names:
            agc.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]], agc


def make_optimizer(groups: list[dict], *, lr: float, optim: OptimSpec) -> torch.optim.Optimizer:
    """The optimiser `optim.name` names, over `groups` (whose weight decay param_groups has set)."""
    if optim.name == "sgd":
        momentum = float(optim.momentum)  # type: ignore[arg-type]  # OptimSpec fills sgd's defaults
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=bool(optim.nesterov) and momentum > 0)
    if optim.name == "adamw":
        beta1, beta2 = optim.betas  # type: ignore[misc]  # OptimSpec fills adamw's defaults
        return torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2))
    raise AssertionError(f"OptimSpec.name {optim.name!r} has no optimiser")  # the Literal type rules it out


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
