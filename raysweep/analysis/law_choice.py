"""`raysweep plan --law auto`: the law chosen by how well it predicted the study's own largest runs.

In-sample fit cannot choose between the forms of `raysweep.analysis.repeated` (a form with more
terms never fits worse), so each form is fitted to the cells in the lower two thirds of the study's
log-compute range and scored on the cells above it: the mean |relative error| of its prediction of
their loss (the cut of `benchmarks/validate_forecast.py`, a forecast's own question: trained on
smaller runs, how wrong about larger ones). The lowest error wins; a form wins over a simpler one
(earlier in `FORMS`) only by more than `TIE`, since one seed cannot tell closer errors apart.

Measured on the full Fashion-MNIST study (`benchmarks/study/repeated_law_extended.txt`), the choice
differs by family: the NFNets, which overfit at 16 epochs, pick a law with a repetition penalty; the
ViTs, still improving at 16 epochs, pick L(N, D). One law for every study would be wrong for one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from raysweep.analysis.repeated import FORMS, fit_repeated
from raysweep.analysis.runs import CellBest

FIT_SHARE = 2 / 3  # of the log-compute range: fitted below the cut, scored above it
HELD_OUT_STARTS = 3  # L-BFGS starts of each held-out fit (of the grid's best points)
MIN_HELD_OUT = 2  # cells above the cut; with fewer the choice falls back to L(N, D)
TIE = 0.005  # a more complex form must beat a simpler one by more than this (absolute, in mean |error|)


@dataclass(frozen=True)
class LawChoice:
    form: str  # a form of FORMS; "chinchilla" is the study's own L(N, D)
    errors: Mapping[str, float | None]  # held-out mean |relative error| per form; None: its fit failed
    cut: float  # compute above which cells were held out
    fitted: int  # cells below the cut
    held_out: int  # cells above it
    fallback: str = ""  # why the choice is L(N, D) without a comparison; "" when chosen by error

    def line(self) -> str:
        """One line for the console: which law and why."""
        if self.fallback:
            return f"law: chinchilla (--law auto: {self.fallback})"
        scores = ", ".join(f"{f} {e:.1%}" if e is not None else f"{f} failed" for f, e in self.errors.items())
        return (f"law: {self.form} (--law auto: lowest error predicting the {self.held_out} cells above "
                f"{self.cut:.3g} from the {self.fitted} below: {scores})")

    def to_json(self) -> dict[str, object]:
        return {"form": self.form, "errors": dict(self.errors), "cut": self.cut, "fitted": self.fitted,
                "held_out": self.held_out, "fallback": self.fallback or None}


def compute_cut(computes: Sequence[float]) -> float:
    """The compute at FIT_SHARE of the log range of `computes`: cells at or below it are fitted, those
    above it predicted (the held-out split of `choose_law` and of the benchmarks' forecast checks)."""
    lo, hi = math.log10(min(computes)), math.log10(max(computes))
    return float(10 ** (lo + FIT_SHARE * (hi - lo)))


def choose_law(cells: Sequence[CellBest], forms: Sequence[str] = FORMS) -> LawChoice:
    """The form (of `forms`, simplest first) that best predicts the cells above the compute cut."""
    pts = [c for c in cells if c.loss > 0 and math.isfinite(c.loss) and c.compute > 0]
    if not pts:
        return LawChoice("chinchilla", {}, math.nan, 0, 0, fallback="no cell with a loss and a compute")
    cut = compute_cut([c.compute for c in pts])
    past = [c for c in pts if c.compute <= cut]
    future = [c for c in pts if c.compute > cut]
    if len(future) < MIN_HELD_OUT:
        return LawChoice("chinchilla", {}, cut, len(past), len(future),
                         fallback=f"{len(future)} cell(s) above the compute cut, {MIN_HELD_OUT} needed to compare laws")
    errors: dict[str, float | None] = {}
    for form in forms:
        fit = fit_repeated(past, form, starts=HELD_OUT_STARTS)
        if not fit.ok:
            errors[form] = None
            continue
        misses = [abs(fit.predict(c.params, c.epochs) / c.loss - 1) for c in future]
        errors[form] = float(np.mean(misses)) if all(math.isfinite(m) for m in misses) else None
    scored = [(f, e) for f, e in errors.items() if e is not None]
    if not scored:
        return LawChoice("chinchilla", errors, cut, len(past), len(future),
                         fallback=f"no law could be fitted to the {len(past)} cells below the compute cut")
    best, best_err = scored[0]
    for form, err in scored[1:]:
        if err < best_err - TIE:
            best, best_err = form, err
    return LawChoice(best, errors, cut, len(past), len(future))
