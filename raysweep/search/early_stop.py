"""In-cell early stopping (`search.early_stop`) as a pure rule: which running trial of a cell stops.

Every trial of a cell runs the same schedule (same budget, same steps, same evaluation points, same
seed), so two trials of one cell compare fairly at a matched step. At each evaluation point a trial
stops when its validation loss is worse than its cell's *incumbent* at the same step by more than a
relative margin:

    loss(trial, s) > loss(incumbent, s) + margin * |loss(incumbent, s)|

- s is the latest step at which the trial and another of the cell's live trials (running or
  finished ok, a different LR) both have a loss: the one that reports a step second is compared at
  it, and one that runs ahead of its incumbent is compared at the incumbent's latest step at its next
  report;
- the incumbent is the trial with the lowest loss at s among those others; a diverged, failed or
  early-stopped trial is never an incumbent;
- the cell's first trial (the earliest-proposed one still standing, see `first_trial`) never stops,
  so every cell keeps one trial that runs its whole budget.

A stopped trial is evidence for the prior only in the direction it proves: it was worse than a
trial of its cell, so it can never be the cell's best (the searcher counts it as a loss that loses to
every finished trial); it is never counted as better than anything.

The margin: `auto` is `AUTO_MARGIN`, from measured seed noise (below), or a number >= 0.

How AUTO_MARGIN is derived. The tables with curves (benchmarks/mnist5k_grid_curves.csv and
fashion_grid_curves.csv, 5 seeds, 8 evaluation points a trial) give the noise a live decision
actually sees: for each cell, each neighbour of its best LR and each evaluation point both share,
the per-seed relative gap (loss(neighbour, s) - loss(best, s)) / loss(best, s) at the matched step s
has a seed-to-seed standard deviation sigma (benchmarks/early_stop_margin.py). Stops happen early
in a budget, where the comparison is first possible, and there the median sigma on MNIST-5k is
0.052 (Fashion-MNIST 0.094; over whole budgets 0.14 and 0.115). AUTO_MARGIN = 0.05, one sigma of
that early noise on MNIST-5k. It is also where the replay's FLOPs-against-regret sweep turns on
MNIST-5k: at 0.05 no regret is added to plain monotone's (0.49%), at 0.02 it rises to 4.7%. Chosen on
MNIST-5k and checked on Fashion-MNIST, it keeps monotone's regret there (0.26%) at 1.44 full trials
per cell. (Until the curves were recorded, `auto` was 0.29: 1.645 x the median paired noise of
neighbouring LRs' final losses in the 10-seed grids, which stopped almost nothing on Fashion-MNIST:
2.08 full trials per cell against 2.10 without early stopping.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EARLY_SEED_NOISE_SIGMA = 0.052  # median matched-step relative seed noise early in a budget, MNIST-5k (docstring)
ONE_SIDED_95 = 1.645  # the one-sided 95% point (benchmarks/early_stop_margin.py prints 1.645 sigma beside it)
AUTO_MARGIN = round(EARLY_SEED_NOISE_SIGMA, 2)  # 0.05

Curve = Mapping[int, float]  # step -> validation loss at that evaluation point


def margin_of(setting: str | float) -> float:
    """The relative margin of a `search.early_stop.margin` setting ('auto' or a number >= 0)."""
    if setting == "auto":
        return AUTO_MARGIN
    margin = float(setting)
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"`margin >= 0` must hold, but got margin={setting!r}")
    return margin


@dataclass(frozen=True)
class Comparison:
    """A matched-step comparison of a trial with its cell's incumbent."""

    step: int  # the matched step
    loss: float  # the trial's loss there
    incumbent: str  # the incumbent's id (whatever ids the caller keys curves by)
    incumbent_loss: float


def compare(curve: Curve, others: Mapping[str, Curve]) -> Comparison | None:
    """The trial's latest matched step with any of `others`, and the best of them there; None when
    no other trial has reached a step the trial has."""
    mine = {s: v for s, v in curve.items() if math.isfinite(v)}
    common = [s for s in mine if any(s in c and math.isfinite(c[s]) for c in others.values())]
    if not common:
        return None
    s = max(common)
    inc, loss = min(((k, c[s]) for k, c in others.items() if s in c and math.isfinite(c[s])),
                    key=lambda kv: (kv[1], kv[0]))
    return Comparison(step=s, loss=mine[s], incumbent=inc, incumbent_loss=loss)


def worse(comparison: Comparison, margin: float) -> bool:
    """Whether the trial is worse than the incumbent at the matched step by more than `margin` (relative)."""
    return comparison.loss > comparison.incumbent_loss + margin * abs(comparison.incumbent_loss)


def decide(trial: str, curves: Mapping[str, Curve], *, first: str | None, margin: float) -> Comparison | None:
    """Whether `trial` stops now: the comparison that stops it, or None.

    `curves` holds the curve of `trial` and of every live trial of its cell at another LR (running or
    finished ok); `first` is the cell's first trial, which never stops."""
    if trial == first or trial not in curves:
        return None
    found = compare(curves[trial], {k: c for k, c in curves.items() if k != trial})
    return found if found is not None and worse(found, margin) else None


def first_trial(numbers: Mapping[str, int]) -> str | None:
    """The cell's first trial: the one proposed earliest (lowest number) among its trials still
    standing (running, finished or stopped; a failed or interrupted one is replaced by its retry)."""
    return min(numbers, key=lambda k: (numbers[k], k)) if numbers else None


def saved_flops(flops_done: float, step: int, total_steps: int) -> float:
    """The FLOPs a trial stopped at `step` of `total_steps` does not spend: its compute so far
    (`flops_done`, spent over `step` steps of one fixed batch size) scaled to the steps left."""
    if step <= 0 or total_steps <= step or not math.isfinite(flops_done):
        return 0.0
    return flops_done * (total_steps - step) / step


@dataclass(frozen=True)
class EarlyStop:
    """A decision to stop a trial, as the study (Optuna user attr), MLflow and the console see it."""

    step: int  # the trial's own step when it stopped (its latest report)
    total_steps: int
    matched_step: int  # where it was compared with the incumbent
    loss: float  # its loss at matched_step
    incumbent_lr: float
    incumbent_loss: float
    margin: float
    saved_flops: float
    lr: float = math.nan

    def reason(self) -> str:
        """One line: why it stopped (MLflow tag `raysweep.early_stop`)."""
        return (f"early stop at step {self.step}/{self.total_steps}: val/loss {self.loss:.4g} at step "
                f"{self.matched_step} is worse than the cell's incumbent (lr {self.incumbent_lr:g}, "
                f"{self.incumbent_loss:.4g}) by more than the margin {self.margin:g}")

    def to_attr(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any]) -> EarlyStop:
        return cls(**{k: attr[k] for k in cls.__dataclass_fields__ if k in attr})
