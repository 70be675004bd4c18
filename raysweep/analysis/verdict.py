"""Where a study's fit stops knowing: the rule `raysweep plan` applies before it prints a loss, and
that `fit.json` states for any budget.

A forecast needs three things:
1. the budget within MAX_EXTRAPOLATION x the largest compute the study measured (the forecast check,
   benchmarks/validate_forecast.py, held 3.8-7.4% at up to 3.5x the fitted compute; past that nothing
   has been checked);
2. the run's size and epoch budget within what was measured (every rung is a measured size; its
   epochs must lie between the shortest and the longest budget the study ran);
3. the floor E identified: the parametric fit is ok, E is not at the search box's edge, and neither
   E nor the lower end of its bootstrap interval is below FLOOR_MIN x the lowest measured loss
   (a floor that can be 0 lets the law fall without limit as N and D grow).

Verdicts, and `raysweep plan`'s exit codes (2 stays bad input):
- `forecast` (exit 0): all three hold; the predicted loss with its 95% interval.
- `bound` (exit 3): the floor is identified but the budget or the run's epochs lie outside the
  measured range; the loss is given only as a lower bound, the floor's lower 95% end (no run can beat
  the law's irreducible loss); the law's point value is withheld.
- `withheld` (exit 4): the floor is not identified (or there is no parametric fit); no loss is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from raysweep.analysis.parametric import ChinchillaFit
from raysweep.analysis.repeated import RepeatedFit

MAX_EXTRAPOLATION: Final = 4.0  # budget / the largest measured compute, past which there is no forecast
FLOOR_MIN: Final = 1e-3  # E (or its interval's lower end) below this x the lowest measured loss: not identified
EPOCH_TOLERANCE: Final = 1e-6  # relative: a budget that lands on the longest measured one is inside

FORECAST: Final = "forecast"
BOUND: Final = "bound"
WITHHELD: Final = "withheld"
EXIT_CODES: Final = {FORECAST: 0, BOUND: 3, WITHHELD: 4}


@dataclass(frozen=True)
class Floor:
    identified: bool
    value: float  # E (nan without a fit)
    lower: float  # the lower end of E's 95% interval, else E
    reason: str  # why not identified ("" when it is)

    def to_json(self) -> dict[str, object]:
        return {"identified": self.identified, "E": _num(self.value), "E_lower": _num(self.lower),
                "reason": self.reason}


def floor(ch: ChinchillaFit | RepeatedFit, min_loss: float) -> Floor:
    """Whether the law's E is identified (either law: L(N, D) or one of raysweep.analysis.repeated's)."""
    if not ch.ok:
        return Floor(False, math.nan, math.nan, f"the parametric fit is {ch.status}")
    e = ch.E if isinstance(ch, ChinchillaFit) else ch.params()["E"]
    iv = ch.intervals.get("E")
    lower = iv.lo if iv is not None and math.isfinite(iv.lo) else e
    tiny = FLOOR_MIN * min_loss
    if "log E" in ch.at_bounds or e < tiny:
        return Floor(False, e, lower, f"the fitted floor E = {e:.3g} is at the search box's edge (0)")
    if lower < tiny:
        return Floor(False, e, lower, f"the floor's 95% interval reaches {lower:.3g}, i.e. 0: E = {e:.3g} is not identified")
    return Floor(True, e, lower, "")


@dataclass(frozen=True)
class Region:
    """What the study measured: the budgets and epochs a forecast may use."""

    top_compute: float
    epochs: tuple[float, float]
    floor: Floor

    @property
    def max_budget(self) -> float:
        return MAX_EXTRAPOLATION * self.top_compute

    def reasons(self, budget: float, epochs: float | None = None) -> list[str]:
        """Why a budget (and a run's epochs) is past what the study supports; [] when it is inside."""
        out = []
        if budget > self.max_budget:
            out.append(f"the budget is {budget / self.top_compute:.3g}x the largest compute measured "
                       f"({self.top_compute:.3g}); forecasts stop at {MAX_EXTRAPOLATION:g}x")
        if epochs is not None:
            lo, hi = self.epochs
            if epochs > hi * (1 + EPOCH_TOLERANCE):
                out.append(f"{epochs:.3g} epochs is past the longest budget measured ({hi:g})")
            elif epochs < lo * (1 - EPOCH_TOLERANCE):
                out.append(f"{epochs:.3g} epochs is below the shortest budget measured ({lo:g})")
        return out

    def verdict(self, budget: float, epochs: float | None = None) -> tuple[str, list[str]]:
        reasons = self.reasons(budget, epochs)
        if not self.floor.identified:
            return WITHHELD, [self.floor.reason, *reasons]
        return (BOUND if reasons else FORECAST), reasons

    def to_json(self) -> dict[str, object]:
        return {"max_budget": self.max_budget, "max_extrapolation": MAX_EXTRAPOLATION,
                "top_compute": self.top_compute, "epochs": list(self.epochs), "floor": self.floor.to_json(),
                "verdicts": {"forecast": "exit 0: budget <= max_budget, epochs within the measured range, "
                                         "floor identified", "bound": "exit 3: outside the measured range; the loss "
                                         "only as a lower bound (E_lower)", "withheld": "exit 4: the floor E is "
                                         "not identified; no loss forecast"}}


def region(ch: ChinchillaFit | RepeatedFit, computes: list[float], epochs: list[float], losses: list[float]) -> Region:
    return Region(max(computes), (min(epochs), max(epochs)), floor(ch, min(losses)))


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
