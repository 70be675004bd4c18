"""`report.md`: a study's analysis for a reader who did not run the sweep.

Every figure's table is here, the fits with their intervals and whether they converged, and, before
anything else, a plain-words warning when the frontier sits at an edge of the lattice. Also the
comparison of two or more studies at matched compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from raysweep.analysis import figures
from raysweep.analysis.compare import Matched
from raysweep.analysis.frontier import log_span
from raysweep.analysis.stats import FitStatus, Interval
from raysweep.analysis.study import StudyFit


def _iv(iv: Interval | None, fmt: str = ".3g") -> str:
    if iv is None or not math.isfinite(iv.lo):
        return "n/a"
    return f"[{iv.lo:{fmt}}, {iv.hi:{fmt}}]"


def _f(x: float, fmt: str = ".4g") -> str:
    return f"{x:{fmt}}" if math.isfinite(x) else "n/a"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return out + [""]


_GRID_ENDS = {"high": ("lr.high", "raise it above", "above"), "low": ("lr.low", "lower it below", "below")}


def grid_bound_warning(fit: StudyFit) -> list[str]:
    """report.md's warning for the cells whose best LR is an end of the LR grid (lr.low or lr.high
    of the spec the runs record): their optimum may lie beyond the grid. Empty when there are none."""
    at = [c for c in fit.cells if c.lr_at_grid_bound]
    if not at:
        return []
    lines = ["## Warning: best LR at the edge of the LR grid", "",
             ("These cells' best LR is an end of the LR grid itself: no grid point lies beyond it, so their "
              "optimum may lie outside the grid, their loss may be higher than the cell can reach, and the LR "
              "trend is cut off there. Widen the grid and run them again:"), ""]
    for edge in ("high", "low"):
        cells = [c for c in at if c.lr_at_grid_bound == edge]
        if not cells:
            continue
        key, verb, side = _GRID_ENDS[edge]
        for lr in sorted({c.best_lr for c in cells}):
            names = ", ".join(c.name for c in cells if c.best_lr == lr)
            lines.append(f"- `{key}`: {verb} {lr:g} (cells {names}): the optimum may lie {side} {lr:g}.")
    if not fit.lr_grid_recorded:
        lines += ["", ("The runs do not record the sweep's lr.low and lr.high (a results table), so the grid's ends "
                       "are taken as the smallest and largest LR any run used.")]
    return lines + [""]


def study_report(fit: StudyFit) -> str:
    pl, ch, tr, al = fit.power_law, fit.chinchilla, fit.lr_trend, fit.allocation
    frontier_names = {c.name for c in fit.frontier}
    lines = [
        f"# Scaling study `{fit.name}`",
        "",
        (f"Source: `{fit.source}`: {fit.n_runs} finished runs, {len(fit.models)} models x {len(fit.epochs)} epoch "
        f"budgets x {len(fit.lrs)} learning rates, {fit.seeds_per_run:g} seeds per (model, budget, LR) (median)."),
        f"Compute axis: {fit.axis.label}.",
        "",
        ("Each (model, epoch budget) cell is taken at its best learning rate: the LR whose validation loss, "
        "averaged over seeds, is lowest. Every figure and fit below uses those cells."),
        "",
    ]
    if fit.warnings:
        lines += ["## Warning: the frontier sits at an edge of the lattice", ""]
        lines += [f"- {w.message}" for w in fit.warnings]
        lines += ["", ("Until the lattice is extended, read the frontier's top and the fitted optimal size and "
                      "budget as bounds, not as the optimum."), ""]
    else:
        lines += [("The frontier turns over inside the lattice: apart from the lattice's corner, no frontier point "
                  "sits at the largest epoch budget or on the largest rung."), ""]
    lines += grid_bound_warning(fit)
    if fit.corner:
        lines += [f"Where the lattice ends: {fit.corner}", ""]

    lines += [f"## Loss against compute (`{figures.LOSS_VS_COMPUTE}`, the paper's Figure 2)", ""]
    if pl.ok:
        lines += [(f"Over the frontier ({pl.n_points} cells, {log_span(fit.frontier):.2f} decades of compute) the loss "
                  f"follows a power law: **log10 L = {pl.intercept:.3f} {pl.slope:+.3f} log10 C**, "
                  f"slope 95% interval {_iv(pl.slope_ci)}, R^2 = {pl.r2:.3f} "
                  f"(bootstrap: {pl.replicates} replicates resampling {pl.bootstrap})."), ""]
    else:
        lines += [f"No power law: the frontier has {pl.n_points} points ({pl.status}).", ""]
    lines += _table(
        ["cell", "params", "epochs", f"compute ({fit.axis.short})", "best LR", "val loss", "s.e.", "frontier"],
        [[c.name, f"{c.params:,}", f"{c.epochs:g}", f"{c.compute:.3g}", f"{c.best_lr:g}", f"{c.loss:.4f}",
          _f(c.loss_se, ".4f"), "yes" if c.name in frontier_names else ""] for c in fit.cells])

    lines += [f"## Compute-optimal allocation (`{figures.OPTIMAL_ALLOCATION}`)", "",
              "From the frontier's cells (a straight line in log-log through them):", ""]
    lines += _table(["quantity", "exponent of compute", "95% interval", "R^2", "status"],
                    [["optimal parameters N", _f(al.params.slope, ".3f"), _iv(al.params.slope_ci), _f(al.params.r2, ".2f"),
                      al.params.status],
                     ["optimal epoch budget", _f(al.epochs.slope, ".3f"), _iv(al.epochs.slope_ci), _f(al.epochs.r2, ".2f"),
                      al.epochs.status]])
    lines += [(f"The cost of one epoch grows as N^{fit.cost.gamma:.3f} across the rungs (measured; "
              "C = 6ND would make it N^1):"), ""]
    lines += _table(["rung", "params", f"cost of one epoch ({fit.axis.short})"],
                    [[m, f"{fit.rung_params[m]:,}", f"{fit.cost.per_epoch[m]:.4g}"] for m in fit.models
                     if m in fit.cost.per_epoch])

    lines += ["## Parametric law L(N, D) = E + A / N^alpha + B / D^beta", "",
              ("N in parameters, D in epochs. Fitted on log loss with a summed Huber loss (delta 1e-3), L-BFGS from "
              f"the best {ch.starts} of a {ch.grid}-point grid of starting points; intervals from {ch.replicates} "
              f"bootstrap replicates ({ch.bootstrap or 'none'})."), ""]
    if ch.status is FitStatus.DEGENERATE and ch.at_bounds:
        lines += [(f"**Degenerate fit**: {', '.join(ch.at_bounds)} ended on the edge of the search box, so a term of "
                  "the law dropped out (e.g. loss that does not fall with model size over this ladder). Neither the "
                  "law nor the allocation it implies is reported as a result; `raysweep plan` falls back on the "
                  "frontier's power laws. The end point, for the record:"), ""]
        lines += _table(["parameter", "value"], [[k, _f(getattr(ch, k))] for k in ("E", "A", "alpha", "B", "beta")])
    elif ch.status in (FitStatus.OK, FitStatus.NOT_CONVERGED):
        conv = ("converged" if ch.converged else "**did not converge**") + f" ({ch.message.strip()})"
        lines += _table(["parameter", "value", "95% interval"],
                        [[k, _f(getattr(ch, k)), _iv(ch.intervals.get(k))] for k in ("E", "A", "alpha", "B", "beta")])
        lines += [(f"- L-BFGS {conv}; {ch.starts_converged} of {ch.starts} starts converged, {ch.starts_at_best} "
                  f"reached the best objective ({ch.objective:.4g}); log-loss RMSE {ch.rmse_log:.4f}.")]
        if ch.at_bounds:
            lines += [(f"- The fit put {', '.join(ch.at_bounds)} on the edge of its search box: the data do not "
                      "pin those parameters down (a term the lattice cannot separate from the others), so read "
                      "the exponents below with care.")]
        a6, b6 = ch.allocation_exponents(1.0)
        i6 = ch.allocation_intervals(1.0) if ch.samples else (None, None)
        ag, bg = ch.allocation_exponents(fit.cost.gamma)
        ig = ch.allocation_intervals(fit.cost.gamma) if ch.samples else (None, None)
        lines += [(f"- Implied allocation with C = 6ND: N_opt ~ C^{a6:.3f} {_iv(i6[0])}, "
                  f"D_opt ~ C^{b6:.3f} {_iv(i6[1])}."),
                  (f"- With the measured cost (one epoch ~ N^{fit.cost.gamma:.3f}): N_opt ~ C^{ag:.3f} {_iv(ig[0])}, "
                  f"D_opt ~ C^{bg:.3f} {_iv(ig[1])}."), ""]
    else:
        lines += [f"Not fitted: {ch.status} ({ch.n_points} cells).", ""]

    lines += [f"## Optimal learning rate (`{figures.LR_VS_EPOCHS}`, the paper's Figure 3)", ""]
    if tr.ok:
        iv = tr.intervals or {}
        lines += [(f"Fit: log lr = {tr.c:.3f} {tr.p:+.3f} log N {tr.q:+.3f} log epochs; exponent of N {tr.p:.3f} "
                  f"{_iv(iv.get('p'))}, exponent of epochs {tr.q:.3f} {_iv(iv.get('q'))}; R^2 = {tr.r2:.2f}, "
                  f"typical miss x{2 ** tr.rmse_log2:.2f}. The paper expects both exponents <= 0."), ""]
    else:
        lines += [f"No trend fitted: {tr.status}.", ""]
    by = {(c.model, c.epochs): c for c in fit.cells}
    lines += [("Best LR per cell (rows: models by size; columns: epoch budgets; `^` marks a rise over a "
              "predecessor, which breaks monotonicity):"), ""]
    broken = {b.cell for b in tr.breaks}
    lines += _table(["model"] + [f"{e:g} ep" for e in fit.epochs],
                    [[m] + [(f"{by[(m, e)].best_lr:g}" + (" ^" if by[(m, e)].name in broken else ""))
                            if (m, e) in by else "-" for e in fit.epochs] for m in fit.models])
    if tr.breaks:
        lines += _table(["cell", "best LR", "above", "whose best LR", "along"],
                        [[b.cell, f"{b.lr:g}", b.predecessor, f"{b.predecessor_lr:g}", b.along] for b in tr.breaks])
    if tr.grid_edge:
        lines += [("Most cells' best LR is the smallest or largest LR that cell tried: a searcher that tries two "
                  "or three neighbouring LRs per cell (monotone) settles that way, and it is no sign that the "
                  "grid is too narrow. Only a best LR at an end of the LR grid itself is (see the warning "
                  "above, if any)."), ""]
    lines += ["## Files", "",
              ("- `fit.json`: every number above, with its interval (`frontier.slope`, `frontier.intercept`, "
              "`frontier.r2`, `parametric.*`, `lr_trend.*`, `allocation.*`)."),
              f"- `{figures.LOSS_VS_COMPUTE}`, `{figures.OPTIMAL_ALLOCATION}`, `{figures.LR_VS_EPOCHS}`.", ""]
    return "\n".join(lines)


def comparison_report(fits: Sequence[StudyFit], matched: Sequence[Matched]) -> str:
    names = [f.name for f in fits]
    lines = ["# Studies compared at matched compute", "",
             f"Studies: {', '.join(f'`{n}`' for n in names)}; compute axis: {fits[0].axis.label}.", "",
             f"`{figures.OVERLAY}` overlays their frontiers. Each study's own report is in its folder.", ""]
    lines += _table(["study", "frontier slope", "95% interval", "R^2", "frontier points", "best loss"],
                    [[f.name, _f(f.power_law.slope, ".3f"), _iv(f.power_law.slope_ci), _f(f.power_law.r2, ".2f"),
                      len(f.frontier), f"{min(c.loss for c in f.cells):.4f}"] for f in fits])
    if not matched:
        lines += ["The studies' compute ranges do not overlap: no loss can be compared at matched compute.", ""]
        return "\n".join(lines)
    lines += [("Loss each reaches at matched compute: measured (the lowest loss any cell reached within that "
              "compute) / power law (its 95% interval):"), ""]
    lines += _table([f"compute ({fits[0].axis.short})"] + names,
                    [[f"{m.compute:.3g}"] + [f"{_f(m.envelope[n], '.4f')} / {_f(m.power_law[n], '.4f')} "
                                             f"{_iv(m.power_law_ci[n], '.4f')}" for n in names] for m in matched])
    best = [min(names, key=lambda n: m.envelope[n]) for m in matched]
    lines += [f"Lowest measured loss at each level: {', '.join(best)}.", ""]
    return "\n".join(lines)
