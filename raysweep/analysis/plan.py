"""A forecast for a budget not yet spent: the runs of the ladder that spend it, ranked, with their
learning rate and the loss to expect where the fit supports one. Runs nothing.

- Every rung of the ladder at the epochs the budget buys it (measured cost per epoch), so each run
  spends exactly the budget; the LR from the fitted trend at (rung, epochs), snapped to the study's
  LR grid; the loss from the law (L(N, D), or a law for repeated data) with its bootstrap interval.
- Ranked: the runs inside the measured epochs first, each group by predicted loss; a run the law
  prefers only by extrapolating comes after, with a note. The first run is the headline.
- Whether its loss is printed as a number, a bound or not at all is `raysweep.analysis.verdict`'s
  rule; the verdict is also the exit code of `raysweep plan` (0, 3, 4).
- The continuous optimum (N*, D*) minimising L(N, D) under the measured cost model (cost = k N^gamma
  x epochs), or the frontier's allocation power laws without a usable fit, is given for reference;
  the frontier's power law at the budget too.
- Beside them, the best run the study measured at a cost within the budget: a result, not a
  forecast. Where the law cannot forecast (a floor not identified, a frontier that turned over)
  it is the one loss known to be reachable, and on a frontier that turned over it can beat the
  law's own answer (benchmarks/validate_forecast.py measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from raysweep.analysis.lr_trend import snap
from raysweep.analysis.parametric import ChinchillaFit
from raysweep.analysis.repeated import RepeatedFit
from raysweep.analysis.stats import NO_INTERVAL, Interval
from raysweep.analysis.verdict import BOUND, EXIT_CODES, FORECAST, WITHHELD, Region, floor

if TYPE_CHECKING:
    from raysweep.analysis.study import StudyFit

SHORT_LIST: Final = 3  # runs in the ranked list


Law = ChinchillaFit | RepeatedFit  # L(N, D), or a law for repeated data (raysweep.analysis.repeated)


@dataclass(frozen=True)
class RunOption:
    """One concrete run: a ladder rung at the epochs that spend the budget."""

    rung: str
    params: int
    epochs: float
    cost: float  # per_epoch x epochs: the budget
    lr: float
    lr_grid: float
    loss: float  # the law's value (nan without a law); printed only under a forecast verdict
    loss_ci: Interval
    verdict: str
    reasons: tuple[str, ...]

    def to_json(self, bound: float) -> dict[str, object]:
        shown = self.verdict == FORECAST
        return {"rung": self.rung, "params": self.params, "epochs": self.epochs, "cost": self.cost, "lr": self.lr,
                "lr_grid": self.lr_grid, "loss": _num(self.loss) if shown else None,
                "loss_ci": self.loss_ci.to_json() if shown else [None, None],
                "loss_lower_bound": _num(bound) if self.verdict == BOUND else None,
                "verdict": self.verdict, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Plan:
    budget: float
    axis_short: str
    method: str  # "parametric" or "frontier allocation"
    n_opt: float
    epochs_opt: float
    rung: str
    rung_params: int
    rung_epochs: float
    lr: float
    lr_grid: float
    lr_interval: Interval
    loss_parametric: float
    loss_parametric_ci: Interval
    loss_frontier: float
    loss_frontier_ci: Interval
    extrapolation: float  # budget / the largest compute the study measured
    notes: tuple[str, ...]
    # the verdict (raysweep.analysis.verdict) on the headline run: forecast, bound or withheld
    verdict: str = FORECAST
    reasons: tuple[str, ...] = ()
    loss_bound: float = math.nan  # under `bound`: the loss no run can beat (the floor's lower 95% end)
    runs: tuple[RunOption, ...] = ()  # ranked, best first; runs[0] is the headline (rung, rung_epochs)
    region: Region | None = None
    # a measured-budget run costing less than the budget that the law predicts lower than every run
    # spending it (a law for repeated data past its turnover), else None
    cheaper: RunOption | None = None
    # the lowest-loss cell the study measured at a cost within the budget: a result, not a forecast
    # (where the law cannot forecast, the one run known to reach a loss at this budget); "" if none
    measured: str = ""
    measured_loss: float = math.nan
    measured_cost: float = math.nan

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> dict[str, object]:
        """The headline's losses are null unless the verdict is a forecast (the law's values past the
        data are not a result; they stay on the object, for the forecast check)."""
        out: dict[str, object] = {}
        shown = self.verdict == FORECAST
        for k, v in self.__dict__.items():
            if k in ("runs", "region", "cheaper"):
                continue
            if k in ("loss_parametric", "loss_frontier", "loss_parametric_ci", "loss_frontier_ci") and not shown:
                v = NO_INTERVAL if isinstance(v, Interval) else math.nan
            out[k] = (v.to_json() if isinstance(v, Interval) else list(v) if isinstance(v, tuple)
                      else _num(v) if isinstance(v, float) else v)
        out["exit_code"] = self.exit_code
        out["runs"] = [r.to_json(self.loss_bound) for r in self.runs]
        out["region"] = self.region.to_json() if self.region is not None else None
        out["cheaper_run"] = self.cheaper.to_json(self.loss_bound) if self.cheaper is not None else None
        return out


def plan(fit: StudyFit, budget: float, law: Law | None = None) -> Plan:
    """The ranked runs that spend `budget`, from `law` (default: the study's L(N, D))."""
    notes: list[str] = []
    ch = fit.chinchilla
    if law is None:
        law = ch
    if ch.ok and not math.isnan(ch.optimum(budget, fit.cost.k, fit.cost.gamma)[0]):
        n_opt, epochs_opt = ch.optimum(budget, fit.cost.k, fit.cost.gamma)
        method = "parametric"
    elif fit.allocation.params.ok and fit.allocation.epochs.ok:
        n_opt, epochs_opt = fit.allocation.params.predict(budget), fit.allocation.epochs.predict(budget)
        method = "frontier allocation"
        notes.append(f"the parametric fit is {ch.status}: size and budget come from the frontier's power laws")
    else:
        best = min(fit.cells, key=lambda c: c.loss)
        n_opt, epochs_opt = float(best.params), best.epochs
        method = "best cell"
        notes.append("neither the parametric fit nor the frontier's allocation could be fitted: the best cell stands in")
    if isinstance(law, RepeatedFit):
        notes.append(f"runs ranked, and losses given, by the {law.form!r} law for repeated data "
                     f"({law.status}); the floor E is that law's")
    if not fit.lr_trend.ok:
        notes.append(f"the LR trend is {fit.lr_trend.status}: the LR is the best cell's")
    where = fit.region() if law is ch else replace(fit.region(), floor=floor(law, min(c.loss for c in fit.cells)))
    costed = [m for m in fit.models if m in fit.cost.per_epoch]  # a rung whose every run diverged has no cost
    options = [_option(fit, law, where, m, budget) for m in costed]
    # Runs inside what the study measured first, each group by predicted loss (without a law: nearest
    # to N* first). A run the law prefers only by extrapolating is listed after them, and said so.
    def inside(o: RunOption) -> bool:
        return not where.reasons(budget, o.epochs)

    if law.ok:
        options.sort(key=lambda o: (not inside(o), o.loss, abs(math.log(o.params / n_opt))))
        best_law = min(options, key=lambda o: o.loss)
        if best_law is not options[0] and inside(options[0]):
            notes.append(f"the law, extrapolated, would rank {best_law.rung}@{best_law.epochs:.3g} epochs first: "
                         f"a run outside the data, worth measuring to extend it")
    else:
        options.sort(key=lambda o: (not inside(o), abs(math.log(o.params / n_opt))))
    head = options[0]
    cheaper = _cheaper(fit, law, where, costed, budget, head) if law.ok else None
    if cheaper is not None:
        notes.append(f"the law turns over before this budget: {cheaper.rung}@{cheaper.epochs:g} epochs, "
                     f"{cheaper.cost / budget:.0%} of the budget, is predicted lower ({cheaper.loss:.4f}) than every "
                     f"run that spends it ({head.loss:.4f}); more compute buys nothing here")
    loss_f = fit.power_law.predict(budget) if fit.power_law.ok else math.nan
    loss_f_ci = fit.power_law.predict_interval(budget) if fit.power_law.ok else NO_INTERVAL
    top = max(c.compute for c in fit.cells)
    extrapolation = budget / top
    if n_opt > 1.5 * max(fit.rung_params.values()):
        notes.append(f"the continuous optimum N* = {n_opt:.3g} is past the largest rung: add a larger rung")
    elif n_opt < min(fit.rung_params.values()) / 1.5:
        notes.append(f"the continuous optimum N* = {n_opt:.3g} is below the smallest rung")
    for w in fit.warnings:
        if w.top:
            notes.append(f"the frontier's top sits at the {w.edge.replace('_', ' ')}: the fits extrapolate an edge")
    bound = where.floor.lower if where.floor.identified else math.nan
    known = min((c for c in fit.cells if c.compute <= budget * (1 + 1e-9)), key=lambda c: c.loss, default=None)
    return Plan(budget=budget, axis_short=fit.axis.short, method=method, n_opt=n_opt, epochs_opt=epochs_opt,
                rung=head.rung, rung_params=head.params, rung_epochs=head.epochs, lr=head.lr, lr_grid=head.lr_grid,
                lr_interval=_lr_interval(fit, head.params, head.epochs), loss_parametric=head.loss,
                loss_parametric_ci=head.loss_ci, loss_frontier=loss_f, loss_frontier_ci=loss_f_ci,
                extrapolation=extrapolation, notes=tuple(notes), verdict=head.verdict, reasons=head.reasons,
                loss_bound=bound, runs=tuple(options[:SHORT_LIST]), region=where, cheaper=cheaper,
                measured=known.name if known is not None else "",
                measured_loss=known.loss if known is not None else math.nan,
                measured_cost=known.compute if known is not None else math.nan)


SPEND_LESS: Final = 0.005  # how much lower (relative) a cheaper run must be predicted to be named


def _cheaper(fit: StudyFit, law: Law, where: Region, rungs: list[str], budget: float,
             head: RunOption) -> RunOption | None:
    """The best run at a budget the study measured, costing less than `budget`, if the law predicts it
    lower than the best run that spends the budget by more than `SPEND_LESS`: only a law that turns
    over (more epochs, a higher loss) can. Only runs inside the data are named; the runs that spend
    the budget are compared by the law's values even where those are extrapolated (the budget past
    the data is where spending less matters most)."""
    if not math.isfinite(head.loss):
        return None
    budgets = sorted({c.epochs for c in fit.cells})
    found = [o for m in rungs for e in budgets if fit.cost.per_epoch[m] * e < budget * (1 - 1e-9)
             for o in [_option(fit, law, where, m, fit.cost.per_epoch[m] * e)] if o.verdict == FORECAST]
    best = min(found, key=lambda o: o.loss, default=None)
    return best if best is not None and best.loss < head.loss * (1 - SPEND_LESS) else None


def _option(fit: StudyFit, law: Law, where: Region, rung: str, budget: float) -> RunOption:
    n = fit.rung_params[rung]
    epochs = budget / fit.cost.per_epoch[rung]
    lr = fit.lr_trend.predict(n, epochs) if fit.lr_trend.ok else min(fit.cells, key=lambda c: c.loss).best_lr
    verdict, reasons = where.verdict(budget, epochs)
    if not law.ok and verdict != WITHHELD:
        verdict, reasons = WITHHELD, ["no law was fitted", *reasons]
    loss = law.predict(n, epochs) if law.ok else math.nan
    ci = law.predict_interval(n, epochs) if law.ok else NO_INTERVAL
    return RunOption(rung, n, epochs, fit.cost.per_epoch[rung] * epochs, lr, snap(lr, fit.lrs), loss, ci, verdict,
                     tuple(reasons))


def _lr_interval(fit: StudyFit, n: float, epochs: float) -> Interval:
    return fit.lr_trend.predict_interval(n, epochs) if fit.lr_trend.ok else NO_INTERVAL


HEADLINE: Final = {
    FORECAST: "FORECAST: inside what the study measured",
    BOUND: "BOUND ONLY: outside what the study measured; the loss is given as a lower bound",
    WITHHELD: "NO FORECAST: the loss is withheld",
}


def format_plan(p: Plan, study: str) -> str:
    lines = [f"plan for a budget of {p.budget:.4g} {p.axis_short}, from study {study!r} ({p.method}):",
             f"  verdict: {HEADLINE[p.verdict]} (exit {p.exit_code})"]
    lines += [f"    because {r}" for r in p.reasons]
    lines.append(f"  runs that spend the budget, best predicted first ({len(p.runs)} of the ladder's rungs):")
    lines.append(f"    {'#':>2} {'rung':<14} {'params':>10} {'epochs':>9} {'LR (grid)':>10} {'predicted val loss':>30}")
    for i, r in enumerate(p.runs, 1):
        lines.append(f"    {i:>2} {r.rung:<14} {r.params:>10,} {r.epochs:>9.3g} {r.lr_grid:>10g} "
                     f"{_loss_cell(r, p.loss_bound):>30}")
    lines.append(f"  learning rate of run 1     {p.lr:.3g} (95% interval {_iv(p.lr_interval)}) before snapping to the grid")
    if p.verdict == FORECAST:
        lines.append(f"  frontier power law         {_f(p.loss_frontier)} (95% {_iv(p.loss_frontier_ci)}) at this budget")
    elif p.verdict == BOUND:
        lines.append(f"  predicted val loss         >= {_f(p.loss_bound)} (the floor E's lower 95% end); no point "
                     f"forecast past the data")
    else:
        lines.append("  predicted val loss         withheld")
    lines.append(f"  continuous optimum         N* = {p.n_opt:,.0f} parameters for {p.epochs_opt:.3g} epochs "
                 f"(no rung need have it)")
    if p.cheaper is not None:
        c = p.cheaper
        lines.append(f"  spend less: {c.rung} for {c.epochs:g} epochs (LR {c.lr_grid:g}, {c.cost:.4g} {p.axis_short}, "
                     f"{c.cost / p.budget:.0%} of the budget) is predicted {_loss_cell(c, p.loss_bound)}, below run 1")
    if p.measured:
        lines.append(f"  best measured within it    {p.measured}: val loss {p.measured_loss:.4f}, measured "
                     f"({p.measured_cost:.4g} {p.axis_short}, {p.measured_cost / p.budget:.0%} of the budget)")
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)


def _loss_cell(r: RunOption, bound: float) -> str:
    if r.verdict == FORECAST:
        return f"{_f(r.loss)} [{r.loss_ci.lo:.4g}, {r.loss_ci.hi:.4g}]" if math.isfinite(r.loss_ci.lo) else _f(r.loss)
    if r.verdict == BOUND:
        return f">= {_f(bound)} (outside data)" if math.isfinite(bound) else "bound: outside data"
    return "withheld"


def _f(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "n/a"


def _iv(iv: Interval) -> str:
    return f"[{iv.lo:.4g}, {iv.hi:.4g}]" if math.isfinite(iv.lo) else "n/a"


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
