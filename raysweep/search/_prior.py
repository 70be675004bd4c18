"""The monotone learning-rate prior as pure rules: which grid points a cell tries, and when it settles.

Finding 3 of the paper: the optimal LR falls slowly but monotonically as model size and epoch budget
grow. So a cell's optimum is at most its *bound*, the smallest settled optimum among its
predecessors, and at most `slowness` grid steps below it. Everything here works on grid indices
(the grid is geometric, so an index is a log-LR) and knows nothing of Optuna; `_prior_sampler`
applies these rules to a study's trials.

A cell is decided in phases: its *opening* trials (all run side by side), then, once every one of
them has finished, at most one *follow-up* at a time until the rule is satisfied and the cell
settles on its best tried LR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

Mode = Literal["monotone", "bracket", "verify", "trend"]
Edge = Literal["low", "high"]  # an end of the LR grid: lr.low or lr.high
MODES: tuple[Mode, ...] = ("monotone", "bracket", "verify", "trend")

K = TypeVar("K", int, float)

# trend mode runs a single trial at the bound only when the forecast lies within this many grid
# steps of it; further out it falls between two points and both are tried. 0.35 met the 1.6
# trials-per-cell goal at monotone's hit rate on most synthetic tables (bench.synthetic); 0.4 lost
# hits once seeds were noisy.
TREND_CONFIDENCE = 0.35


def pick_best(losses: Mapping[K, float], tie_tolerance: float = 0.0) -> K:
    """The LR (or grid index) with the lowest loss; ties within `tie_tolerance` go to the larger LR.

    A tie is a loss within `tie_tolerance` (relative) of the best one. Diverged trials (inf,
    as are failed ones out of retries) lose to any finished one; when nothing finished, the smallest LR wins, the safest bound
    for the cells that follow (and the direction a search should keep moving in).
    """
    if not losses:
        raise ValueError("`losses` must not be empty")
    finite = {k: v for k, v in losses.items() if math.isfinite(v)}
    if not finite:
        return min(losses)
    best = min(finite.values())
    cutoff = best + tie_tolerance * abs(best)
    return max(k for k, v in finite.items() if v <= cutoff)


@dataclass(frozen=True)
class Bound:
    index: int  # grid index of the smallest settled optimum among the predecessors
    source: str  # the predecessor it comes from, by cell name
    clipped: bool = False  # that predecessor was held at the grid's top (`PriorRule.blocked` said "high")


@dataclass(frozen=True)
class Prediction:
    """trend mode: where the fitted trend puts this cell's optimum, in (fractional) grid steps."""

    index: float
    note: str  # how it was fitted, for the reason string
    trusted: bool = True  # may run alone when it agrees with the bound
    warm: bool = False  # an earlier study's forecast (`search.warm_start`): it replaces the bound
    toward: float | None = None  # warm, outside the earlier study's box: where its extrapolated line points


@dataclass(frozen=True)
class Propose:
    index: int
    reason: str


@dataclass(frozen=True)
class Settle:
    index: int


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT = _Wait()  # a trial of this cell is running and the next step depends on its result
Step = Propose | Settle | _Wait


@dataclass(frozen=True)
class PriorRule:
    """The prior for one lattice: the LR grid, the first cell's start and the mode's options."""

    lrs: tuple[float, ...]  # ascending grid
    start: int  # grid index of the first cell's starting LR
    mode: Mode = "monotone"
    slowness: int = 1  # the optimum is at most this many grid steps below the bound
    tie_tolerance: float = 0.0  # relative; ties go to the larger LR

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}, but got {self.mode!r}")
        if not 0 <= self.start < len(self.lrs):
            raise ValueError(f"`0 <= start < {len(self.lrs)}` must hold, but got start={self.start}")
        if self.slowness < 0:
            raise ValueError(f"`slowness >= 0` must hold, but got slowness={self.slowness}")
        if self.tie_tolerance < 0:
            raise ValueError(f"`tie_tolerance >= 0` must hold, but got tie_tolerance={self.tie_tolerance}")

    def step(
        self,
        bound: Bound | None,
        tried: Mapping[int, float],
        pending: set[int],
        prediction: Prediction | None = None,
    ) -> Step:
        """The next thing a ready cell needs: a trial, a wait, or its settled grid index.

        `bound` is None for the first cell; `tried` maps grid index -> loss (inf when diverged, or
        failed past its retries; a failed trial with retries left is in neither) and `pending` holds
        the indices still running.
        """
        for index, reason in self.opening(bound, prediction):
            if index not in tried and index not in pending:
                return Propose(index, reason)
        if pending:
            return WAIT
        follow = self.follow_up(bound is None, tried)
        if follow is not None:
            return follow
        return Settle(pick_best(tried, self.tie_tolerance))

    def blocked(self, bound: Bound | None, tried: Mapping[int, float],
                prediction: Prediction | None = None) -> Edge | None:
        """Which end of the grid cut a settled cell's search short: "high" or "low" when the rule
        wanted a trial beyond the grid's highest or lowest LR and the cell settled there; else None.

        - the first cell steps toward its winner until it brackets it: a winner at the grid's top
          (or, having stepped down, at its bottom) wanted one step further;
        - every tried LR diverged and the lowest is the grid's bottom (it would step down);
        - the opening reached below the grid (bound - slowness < 0), or bracket mode's lowest-won
          step, and the cell settled at the bottom;
        - verify mode's step above a bound at the top, or a bound that was itself held at the top
          (`Bound.clipped`), and the cell settled at the top;
        - a warm start whose forecast (or its extrapolated line) lies beyond an end the cell settled at.
        """
        top = len(self.lrs) - 1
        lo, hi = min(tried), max(tried)
        if not any(math.isfinite(v) for v in tried.values()):
            return "low" if lo == 0 else None
        winner = pick_best(tried, self.tie_tolerance)
        if prediction is not None and prediction.warm:
            ends = (prediction.index, prediction.index if prediction.toward is None else prediction.toward)
            if winner == top and max(ends) > top + 0.5:
                return "high"
            if winner == 0 and min(ends) < -0.5:
                return "low"
            return None
        if bound is None:
            if winner == hi == top:
                return "high"
            if winner == lo == 0 and lo < hi:
                return "low"
            return None
        if winner == 0 and (bound.index - self.slowness < 0 or self.mode == "bracket"):
            return "low"
        if winner == bound.index == top and (bound.clipped or self.mode == "verify"):
            return "high"
        return None

    def opening(self, bound: Bound | None, prediction: Prediction | None = None) -> list[tuple[int, str]]:
        """The trials a cell starts with, run side by side: (grid index, reason)."""
        if prediction is not None and prediction.warm:
            return self.warm_opening(prediction)
        if bound is None:
            out = [(self.start, f"first cell: start {self.lrs[self.start]:g}")]
            if self.start > 0:
                out.append((self.start - 1, f"first cell: start - 1 step = {self.lrs[self.start - 1]:g}"))
            return out
        b = bound.index
        at_bound = (b, f"bound from {bound.source} = {self.lrs[b]:g}")
        floor = max(0, b - self.slowness)
        if self.mode == "trend" and prediction is not None:
            return self._trend_opening(b, floor, prediction)
        out = [at_bound]
        for k in range(1, b - floor + 1):
            steps = f"{k} step{'s' if k > 1 else ''}"
            out.append((b - k, f"bound - {steps} (slowness {self.slowness}) = {self.lrs[b - k]:g}"))
        if self.mode == "verify" and b + 1 < len(self.lrs):
            out.append((b + 1, f"verify: bound + 1 step = {self.lrs[b + 1]:g}"))
        return out

    def _trend_opening(self, b: int, floor: int, prediction: Prediction) -> list[tuple[int, str]]:
        x = min(float(b), max(float(floor), prediction.index))  # clipped to the prior's range
        p = min(b, math.floor(x + 0.5))  # round half up: toward the larger LR
        out = [(p, f"trend: {prediction.note} predicts {self.lrs[p]:g} (bound {self.lrs[b]:g})")]
        if p == b and b - x <= TREND_CONFIDENCE and prediction.trusted:
            return out  # the trend agrees with the bound: one trial
        # the prediction falls between grid points or below the bound: add the neighbour it leans to
        side = 1 if prediction.index > p else -1
        for n in (p + side, p - side):
            if floor <= n <= b:
                out.append((n, f"trend: neighbour of the prediction = {self.lrs[n]:g}"))
                break
        return out

    def warm_opening(self, prediction: Prediction) -> list[tuple[int, str]]:
        """A warm-started cell: the grid point nearest the forecast, and at most one more.

        Outside the earlier study's box the forecast is held at the box's edge and its extrapolated
        line (`toward`) says which way the optimum moves: when the line rounds to another grid point,
        the one step toward it is tried too (the optimum moves slowly). Otherwise the nearest point
        runs alone when the forecast sits within TREND_CONFIDENCE steps of it, else with the neighbour
        the forecast leans to."""
        top = len(self.lrs) - 1
        x = min(float(top), max(0.0, prediction.index))
        p = math.floor(x + 0.5)
        out = [(p, f"warm start: {prediction.note} predicts {self.lrs[p]:g}")]
        if prediction.toward is not None:
            q = math.floor(min(float(top), max(0.0, prediction.toward)) + 0.5)
            if q != p:
                n = p + (1 if q > p else -1)
                why = f"warm start: one step toward the extrapolated trend ({self.lrs[q]:g}) = {self.lrs[n]:g}"
                return [*out, (n, why)]
        if abs(x - p) <= TREND_CONFIDENCE:
            return out
        n = p + 1 if x > p else p - 1
        if 0 <= n <= top:
            out.append((n, f"warm start: neighbour of the forecast = {self.lrs[n]:g}"))
        return out

    def follow_up(self, first: bool, tried: Mapping[int, float]) -> Propose | None:
        """One more trial once every earlier one has finished, or None when the cell can settle."""
        lo, hi = min(tried), max(tried)
        if not any(math.isfinite(v) for v in tried.values()):
            if lo > 0:
                return Propose(lo - 1, f"every tried LR diverged, stepping down to {self.lrs[lo - 1]:g}")
            return None
        winner = pick_best(tried, self.tie_tolerance)
        if first:
            if winner == lo and lo > 0 and lo < hi:
                return Propose(lo - 1, f"first cell: lowest tried won, stepping down to {self.lrs[lo - 1]:g}")
            if winner == hi and hi + 1 < len(self.lrs):
                return Propose(hi + 1, f"first cell: highest tried won, stepping up to {self.lrs[hi + 1]:g}")
            return None
        if self.mode == "bracket" and winner == lo and lo > 0:
            return Propose(lo - 1, f"bracket: lowest tried won, stepping down to {self.lrs[lo - 1]:g}")
        return None
