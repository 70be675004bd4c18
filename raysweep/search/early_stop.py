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

How AUTO_MARGIN is derived. In the two recorded 10-seed grids (benchmarks/mnist5k_grid_agc0.16.csv,
fashion_grid_agc0.16.csv), for each cell and each neighbour of its best LR, the per-seed relative
gap (loss(neighbour) - loss(best)) / loss(best) has a seed-to-seed standard deviation sigma; the
median sigma over those 61 (cell, neighbour) pairs is 0.1755 (MNIST-5k 0.280 over 24 pairs,
Fashion-MNIST 0.114 over 37). A paired gap is what a live stop decision sees: both trials of a cell
share the seed. AUTO_MARGIN = 1.645 sigma ~= 0.29 is the one-sided 95% point: a trial whose LR is
truly no worse than the incumbent's is stopped with probability at most about 5%. The measurement is
of final losses; the grids record no curves yet (issue 16 item 1), so the noise at earlier steps is
assumed no larger in relative terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEED_NOISE_SIGMA = 0.1755  # median paired relative seed noise of neighbouring LRs (module docstring)
ONE_SIDED_95 = 1.645
AUTO_MARGIN = round(ONE_SIDED_95 * SEED_NOISE_SIGMA, 2)  # 0.29

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
