"""A forecast for a budget not yet spent: the compute-optimal model size and epoch budget, the rung
to train, its learning rate, and the loss to expect. Runs nothing.

- The optimum (N*, D*) minimises the parametric law L(N, D) under the measured cost model
  (cost = k N^gamma x epochs). Without a usable parametric fit it falls back on the frontier's
  allocation power laws (N_opt ~ C^a, epochs_opt ~ C^b).
- The rung is the known model nearest to N* in log size; its epoch budget is what the budget buys
  for that rung (measured cost per epoch), so the recommendation spends exactly the budget.
- The LR comes from the fitted trend at (rung, budget), and is snapped to the study's LR grid.
- The loss is given twice, each with its bootstrap interval: the parametric law at the recommended
  (rung, budget), and the frontier's power law at the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from raysweep.analysis.lr_trend import snap
from raysweep.analysis.stats import NO_INTERVAL, Interval
from raysweep.analysis.study import StudyFit


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

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in self.__dict__.items():
            out[k] = v.to_json() if isinstance(v, Interval) else list(v) if isinstance(v, tuple) else v
        return out


def plan(fit: StudyFit, budget: float) -> Plan:
    notes: list[str] = []
    ch = fit.chinchilla
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
    costed = [m for m in fit.models if m in fit.cost.per_epoch]  # a rung whose every run diverged has no cost
    rung = min(costed, key=lambda m: abs(math.log(fit.rung_params[m] / n_opt)))
    rung_epochs = budget / fit.cost.per_epoch[rung]
    n_rung = fit.rung_params[rung]
    if fit.lr_trend.ok:
        lr = fit.lr_trend.predict(n_rung, rung_epochs)
        lr_ci = fit.lr_trend.predict_interval(n_rung, rung_epochs)
    else:
        lr, lr_ci = min(fit.cells, key=lambda c: c.loss).best_lr, NO_INTERVAL
        notes.append(f"the LR trend is {fit.lr_trend.status}: the LR is the best cell's")
    loss_p = ch.predict(n_rung, rung_epochs) if ch.ok else math.nan
    loss_p_ci = ch.predict_interval(n_rung, rung_epochs) if ch.ok else NO_INTERVAL
    loss_f = fit.power_law.predict(budget) if fit.power_law.ok else math.nan
    loss_f_ci = fit.power_law.predict_interval(budget) if fit.power_law.ok else NO_INTERVAL
    top = max(c.compute for c in fit.cells)
    extrapolation = budget / top
    if extrapolation > 1:
        notes.append(f"the budget is {extrapolation:.3g}x the largest run the study measured: an extrapolation")
    if n_opt > 1.5 * max(fit.rung_params.values()):
        notes.append(f"the optimal size {n_opt:.3g} is past the largest rung: add a larger rung")
    if rung_epochs > 1.5 * max(fit.epochs):
        notes.append(f"{rung} at {rung_epochs:.3g} epochs is past the longest budget measured ({max(fit.epochs):g})")
    for w in fit.warnings:
        if w.top:
            notes.append(f"the frontier's top sits at the {w.edge.replace('_', ' ')}: the fits extrapolate an edge")
    return Plan(budget=budget, axis_short=fit.axis.short, method=method, n_opt=n_opt, epochs_opt=epochs_opt,
                rung=rung, rung_params=n_rung, rung_epochs=rung_epochs, lr=lr, lr_grid=snap(lr, fit.lrs),
                lr_interval=lr_ci, loss_parametric=loss_p, loss_parametric_ci=loss_p_ci, loss_frontier=loss_f,
                loss_frontier_ci=loss_f_ci, extrapolation=extrapolation, notes=tuple(notes))


def format_plan(p: Plan, study: str) -> str:
    lines = [
        f"plan for a budget of {p.budget:.4g} {p.axis_short}, from study {study!r} ({p.method}):",
        f"  compute-optimal size      N* = {p.n_opt:,.0f} parameters, for {p.epochs_opt:.3g} epochs",
        (f"  nearest rung              {p.rung} ({p.rung_params:,} parameters): {p.rung_epochs:.3g} epochs "
        f"spend the budget"),
        (f"  learning rate             {p.lr:.3g} (95% interval {_iv(p.lr_interval)}); on the study's grid: "
        f"{p.lr_grid:g}"),
        (f"  predicted val loss        {_f(p.loss_parametric)} (95% {_iv(p.loss_parametric_ci)}) from L(N, D) at "
        f"{p.rung}@{p.rung_epochs:.3g}"),
        (f"                            {_f(p.loss_frontier)} (95% {_iv(p.loss_frontier_ci)}) from the frontier's "
        f"power law at this budget"),
    ]
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)


def _f(x: float) -> str:
    return f"{x:.4f}" if math.isfinite(x) else "n/a"


def _iv(iv: Interval) -> str:
    return f"[{iv.lo:.4g}, {iv.hi:.4g}]" if math.isfinite(iv.lo) else "n/a"
