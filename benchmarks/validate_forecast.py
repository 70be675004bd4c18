"""Does the study forecast its own future? Fit on the lower two thirds of a recorded sweep's compute,
predict the top third's frontier, and print the errors.

For each table: the cells whose one-run compute lies in the lower two thirds of the lattice's
compute range (in log) are the past; `raysweep.analysis` fits them exactly as `raysweep analyze`
does. Every frontier point of the whole lattice above that cut is a future budget: `raysweep plan`
at that compute predicts the loss (the parametric law at its recommended rung, and the frontier's
power law) and the optimal rung, and both are compared with what the full grid measured. `at cell` is the law at the measured
frontier cell itself: the law's error without the allocation's. Where the lattice's epoch grid ends
before the forecast optimum (a plan of 8+ epochs on a grid that stops at 4), the measured frontier
is censored, and the rung comparison says more about the grid than about the forecast.

Past a frontier that turns over, the top third holds few frontier points, so a second judge asks
the plan at every held-out cell's compute C what to run within C: its answer is the run it names
to spend less (`Plan.cheaper`, a law for repeated data past its turnover) or else its first run;
it is right when that is the lattice's best measured cell among those costing at most C (within 2%), and its
regret is that run's measured loss over the best's (where the answer was measured).

Each point is also scored as `raysweep plan` states it (raysweep.analysis.verdict): a `forecast`
counts against GOAL (issue 17: within 3% of the measured loss), a `bound` holds when the measured
loss is at or above it, and `withheld` asserts nothing. And the fitted cells are searched for the
phenomenon that bends a frontier's top, a rung that is worse at a longer budget (overfitting on
repeated data): where the lower two thirds hold none, no law fitted there can place the top third's
turnover, and the check says so.

Run:
    PYTHONPATH=. .venv/bin/python benchmarks/validate_forecast.py \
        benchmarks/fashion_grid_agc0.16.csv benchmarks/mnist5k_grid_agc0.16.csv \
        --json benchmarks/analysis/forecast_validation.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from raysweep.analysis.frontier import frontier_points
from raysweep.analysis.law_choice import choose_law, compute_cut
from raysweep.analysis.plan import Law, plan
from raysweep.analysis.repeated import FORMS, RepeatedFit, fit_repeated
from raysweep.analysis.runs import CellBest, ComputeAxis, Runs, load_csv
from raysweep.analysis.stats import Resampler
from raysweep.analysis.study import analyze
from raysweep.analysis.verdict import BOUND, FORECAST

SAME = 0.02  # a measured run within 2% of a budget (its epochs, or its cost) counts as that budget's
GOAL = 0.03  # issue 17: a forecast within 3% of the measured loss at every held-out frontier point


def validate(path: str, replicates: int, law_form: str = "chinchilla") -> dict[str, object]:
    runs = load_csv(path)
    cells = runs.cells(ComputeAxis.FLOPS)
    cut = compute_cut([c.compute for c in cells])
    past = {(c.model, c.epochs) for c in cells if c.compute <= cut}
    train = Runs(name=runs.name + "_lower2/3", runs=tuple(r for r in runs.runs if (r.model, r.epochs) in past),
                 source=f"{path}, cells with compute <= {cut:.3g} FLOPs")
    fit = analyze(train, ComputeAxis.FLOPS, replicates=replicates)
    law: Law = fit.chinchilla
    choice = None
    if law_form == "auto":  # `plan --law auto`, chosen from the lower two thirds alone (no peeking above the cut)
        choice = choose_law(fit.cells)
        law_form = choice.form
    if law_form != "chinchilla":  # a law for repeated data, fitted on the same lower two thirds
        resampler = Resampler(train, ComputeAxis.FLOPS, replicates=replicates) if replicates else None
        law = fit_repeated(fit.cells, law_form, resampler, replicates=replicates)
    order = {m: i for i, m in enumerate(runs.models)}
    rows = []
    for point in [p for p in frontier_points(cells) if p.compute > cut]:
        p = plan(fit, point.compute, law)
        rows.append({
            "cell": point.name, "compute": point.compute, "loss": point.loss, "loss_se": point.loss_se,
            "power_law": p.loss_frontier, "power_law_ci": p.loss_frontier_ci.to_json(),
            "power_law_err": p.loss_frontier / point.loss - 1,
            "parametric": p.loss_parametric, "parametric_ci": p.loss_parametric_ci.to_json(),
            "parametric_err": p.loss_parametric / point.loss - 1,
            # the law at the measured cell itself: its error without the allocation's
            "parametric_at_cell": law.predict(point.params, point.epochs) if law.ok else math.nan,
            "parametric_at_cell_err": (law.predict(point.params, point.epochs) / point.loss - 1
                                       if law.ok else math.nan),
            "rung_true": point.model, "rung_pred": p.rung, "rung_off": order[p.rung] - order[point.model],
            "epochs_true": point.epochs, "epochs_pred": p.rung_epochs, "lr_true": point.best_lr, "lr_pred": p.lr_grid,
            "verdict": p.verdict, "reasons": list(p.reasons), "bound": p.loss_bound if p.verdict == BOUND else math.nan,
        })
    within = []
    for cell in sorted((c for c in cells if c.compute > cut), key=lambda c: c.compute):
        p = plan(fit, cell.compute, law)
        answer = p.cheaper or p.runs[0]
        best = min((c for c in cells if c.compute <= cell.compute * (1 + SAME)), key=lambda c: c.loss)
        got = next((c for c in cells if c.model == answer.rung and math.isclose(c.epochs, answer.epochs, rel_tol=SAME)),
                   None)
        within.append({"budget_cell": cell.name, "compute": cell.compute, "best": best.name, "best_loss": best.loss,
                       "answer": f"{answer.rung}@{answer.epochs:.3g}", "spend_less": p.cheaper is not None,
                       "predicted": answer.loss, "predicted_err": answer.loss / best.loss - 1,
                       "answer_loss": got.loss if got is not None else math.nan,
                       "regret": got.loss / best.loss - 1 if got is not None else math.nan,
                       "right": got is not None and got.name == best.name, "rung_right": answer.rung == best.model,
                       # the plan's own "best measured within it" line: every fitted run costs less than
                       # a held-out budget, so it is the best fitted run, named again
                       "measured": p.measured, "incumbent_regret": p.measured_loss / best.loss - 1})
    regrets = [w["regret"] for w in within if math.isfinite(w["regret"])]
    return {
        "as_stated": as_stated(rows), "turnover": turnover([c for c in cells if c.compute <= cut], cells),
        "within_budget": within,
        "within_budget_summary": {"budgets": len(within), "right": sum(w["right"] for w in within),
                                  "rung_right": sum(w["rung_right"] for w in within),
                                  "measured_answers": len(regrets),
                                  "mean_regret": float(np.mean(regrets)) if regrets else None,
                                  # the same budgets' regret had the plan named the best fitted run again
                                  # (over the budgets whose answer was measured, and over all)
                                  "incumbent": ", ".join(dict.fromkeys(w["measured"] for w in within)),
                                  "incumbent_regret_measured": float(np.mean(
                                      [w["incumbent_regret"] for w in within if math.isfinite(w["regret"])]))
                                  if regrets else None,
                                  "incumbent_regret": float(np.mean([w["incumbent_regret"] for w in within]))
                                  if within else None,
                                  "mean_abs_predicted_err": float(np.mean([abs(w["predicted_err"]) for w in within]))
                                  if within else None},
        "table": path, "law": law_form, "law_auto": choice.to_json() if choice is not None else None,
        "cut_flops": cut, "fit_cells": len(past), "all_cells": len(cells),
        "fit": {"frontier_slope": fit.power_law.slope, "frontier_r2": fit.power_law.r2,
                "parametric_status": str(law.status), "parametric_converged": law.converged, **_constants(law)},
        "predictions": rows,
        "mean_abs_err": {k: float(np.mean([abs(r[k + "_err"]) for r in rows])) if rows else None
                         for k in ("power_law", "parametric", "parametric_at_cell")},
        "rung_hits": sum(r["rung_off"] == 0 for r in rows), "points": len(rows),
    }


def as_stated(rows: list[dict[str, object]]) -> dict[str, object]:
    """The held-out points scored as `plan` states them: forecasts against GOAL, bounds held or not."""
    fc = [r for r in rows if r["verdict"] == FORECAST]
    bd = [r for r in rows if r["verdict"] == BOUND]
    return {"goal": GOAL, "forecasts": len(fc),
            "within_goal": sum(abs(r["parametric_err"]) <= GOAL for r in fc),  # type: ignore[arg-type]
            "rung_right": sum(r["rung_off"] == 0 for r in fc),
            "bounds": len(bd), "bounds_held": sum(r["loss"] >= r["bound"] for r in bd),  # type: ignore[operator]
            "withheld": len(rows) - len(fc) - len(bd)}


def turnover(fitted: list[CellBest], every: list[CellBest]) -> dict[str, object]:
    """Rungs worse at a longer budget than at a shorter one: among the fitted cells, and in the whole lattice."""
    def worse(cells: list[CellBest]) -> list[str]:
        out = []
        for model in dict.fromkeys(c.model for c in cells):
            mine = sorted((c for c in cells if c.model == model), key=lambda c: c.epochs)
            best = min(mine, key=lambda c: c.loss)
            if best is not mine[-1]:
                out.append(f"{best.name} < {mine[-1].name}")
        return out
    return {"fitted": worse(fitted), "all": worse(every)}


def _constants(law: Law) -> dict[str, float]:
    """alpha, beta and E of either kind of law (nan where it has no fit)."""
    if isinstance(law, RepeatedFit):
        params = law.params() if law.theta else {}
        return {k: params.get(k, math.nan) for k in ("alpha", "beta", "E")}
    return {"alpha": law.alpha, "beta": law.beta, "E": law.E}


def format_result(res: dict[str, object]) -> str:
    fit = res["fit"]
    auto = res.get("law_auto")
    chosen = [] if not auto else [f"--law auto chose {auto['form']} on the fitted cells alone: " + (  # type: ignore[index]
        auto["fallback"] or ", ".join(f"{f} {e:.1%}" if e is not None else f"{f} failed"  # type: ignore[index]
                                      for f, e in auto["errors"].items()))]  # type: ignore[index]
    lines = chosen + [(f"{res['table']}: fit on {res['fit_cells']} of {res['all_cells']} cells (compute <= "
             f"{res['cut_flops']:.3g} FLOPs); frontier slope {fit['frontier_slope']:.3f} (R^2 {fit['frontier_r2']:.2f}); "
             f"{'L(N, D)' if res['law'] == 'chinchilla' else 'law ' + res['law']} {fit['parametric_status']}, alpha {fit['alpha']:.3f}, beta {fit['beta']:.3f}, E {fit['E']:.3f}"),
             (f"{'top-third frontier cell':<24} {'FLOPs':>9} {'loss':>7} {'power law':>10} {'err':>7} {'in CI':>5} "
             f"{'L(N,D)':>7} {'err':>7} {'in CI':>5} {'at cell':>7} {'err':>7} {'rung (pred)':>22} {'epochs (pred)':>14} {'LR (pred)':>10}")]
    for r in res["predictions"]:
        in_pl = "yes" if r["power_law_ci"][0] is not None and r["power_law_ci"][0] <= r["loss"] <= r["power_law_ci"][1] else "no"
        in_pa = "yes" if r["parametric_ci"][0] is not None and r["parametric_ci"][0] <= r["loss"] <= r["parametric_ci"][1] else "no"
        lines.append(f"{r['cell']:<24} {r['compute']:>9.3g} {r['loss']:>7.4f} {r['power_law']:>10.4f} "
                     f"{r['power_law_err']:>+7.1%} {in_pl:>5} {r['parametric']:>7.4f} {r['parametric_err']:>+7.1%} "
                     f"{in_pa:>5} {r['parametric_at_cell']:>7.4f} {r['parametric_at_cell_err']:>+7.1%} {r['rung_true'] + ' (' + r['rung_pred'] + ')':>22} "
                     f"{r['epochs_true']:>5g} ({r['epochs_pred']:>5.3g}) {r['lr_true']:>4g} ({r['lr_pred']:g})")
    err = res["mean_abs_err"]
    lines.append(f"mean |error|: power law {err['power_law']:.1%}, L(N, D) at the planned rung "
                 f"{err['parametric']:.1%}, L(N, D) at the measured cell {err['parametric_at_cell']:.1%}; optimal rung "
                 f"right at {res['rung_hits']} of {res['points']} points")
    st = res["as_stated"]
    lines.append(f"as plan states them: {st['forecasts']} forecast(s), {st['within_goal']} within {st['goal']:.0%}, "  # type: ignore[index]
                 f"rung right at {st['rung_right']}; {st['bounds']} bound(s), {st['bounds_held']} held; "  # type: ignore[index]
                 f"{st['withheld']} withheld" + "".join(  # type: ignore[index]
                     f"; {r['cell']} {r['verdict']}" + (f" ({r['reasons'][0]})" if r["reasons"] else "")
                     for r in res["predictions"] if r["verdict"] != FORECAST))  # type: ignore[attr-defined]
    to = res["turnover"]
    lines.append("turnover (a rung worse at its longest budget than at a shorter one): in the fitted cells "  # type: ignore[index]
                 + (", ".join(to["fitted"]) or "none") + "; in the whole lattice "  # type: ignore[index]
                 + (", ".join(to["all"]) or "none")  # type: ignore[index]
                 + ("" if to["fitted"] or not to["all"] else  # type: ignore[index]
                    ": the lower two thirds show no overfitting, so no law fitted there can place the top third's turnover"))
    lines.append(f"{'held-out budget (cell)':<24} {'FLOPs':>9} {'best within it':>18} {'loss':>7} {'plan answers':>18} "
                 f"{'spend less':>10} {'predicted':>9} {'err':>7} {'measured':>8} {'regret':>7}")
    for w in res["within_budget"]:  # type: ignore[attr-defined]
        lines.append(f"{w['budget_cell']:<24} {w['compute']:>9.3g} {w['best']:>18} {w['best_loss']:>7.4f} "
                     f"{w['answer']:>18} {'yes' if w['spend_less'] else 'no':>10} {w['predicted']:>9.4f} "
                     f"{w['predicted_err']:>+7.1%} {w['answer_loss']:>8.4f} {w['regret']:>+7.1%}")
    ws = res["within_budget_summary"]
    mr = ws["mean_regret"]  # type: ignore[index]
    lines.append(f"within each held-out budget: the best measured run named at {ws['right']} of {ws['budgets']} "  # type: ignore[index]
                 f"budgets, its rung at {ws['rung_right']}; "  # type: ignore[index]
                 f"mean |error| of the predicted loss against the best {ws['mean_abs_predicted_err']:.1%}; "  # type: ignore[index]
                 f"mean regret {'n/a' if mr is None else f'{mr:.1%}'} over the {ws['measured_answers']} answers "  # type: ignore[index]
                 f"the lattice measured (naming the best fitted run, {ws['incumbent']}, again: "  # type: ignore[index]
                 f"{_pct(ws['incumbent_regret_measured'])} over those, {_pct(ws['incumbent_regret'])} "  # type: ignore[index]
                 f"over all {ws['budgets']})")  # type: ignore[index]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _clean(x: object) -> object:
    """nan (a fit that gave no number) as JSON null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--bootstrap", type=int, default=100, help="replicates for the intervals (default: %(default)s)")
    ap.add_argument("--law", choices=("chinchilla", *FORMS, "auto"), default="chinchilla",
                    help="the law that plans and predicts: L(N, D) (default), a law for repeated data, or 'auto' "
                         "(plan --law auto's choice, made on the fitted lower two thirds alone)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = [validate(t, args.bootstrap, args.law) for t in args.tables]
    for res in results:
        print(format_result(res))
        print()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(results), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
