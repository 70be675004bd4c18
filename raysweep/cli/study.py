"""`raysweep analyze` and `raysweep plan`: the study's questions answered from its MLflow runs (or a
results table), and a forecast for the next budget.

The edge between the pure analysis (`raysweep.analysis`, no MLflow) and the record: runs are read
with `raysweep.results.mlflow_rows.read_trials`, and the outputs are logged back as artifacts on every parent
run of the sweep (a sweep resumed across sessions has several). Bad input is a `SpecError` before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep.core.errors import SpecError

if TYPE_CHECKING:
    from raysweep.cli.sources import Source

ANALYZE_EPILOG = """examples:
  raysweep analyze --experiment raysweep-demo --out analysis/
  raysweep analyze --table benchmarks/fashion_grid_agc0.16.csv --out benchmarks/analysis/fashion_grid_agc0.16
  raysweep analyze --experiment nfnet-fashion --experiment vit-fashion --out compare/   # frontiers overlaid
  raysweep analyze --experiment raysweep-demo --compute tpu_v4_core_hours --out analysis/

Writes into OUT: loss_vs_compute.png (the paper's Figure 2), optimal_allocation.png, lr_vs_epochs.png
(Figure 3), report.md (the tables behind each figure, and a warning when the frontier sits at an edge
of the lattice) and fit.json (every fitted number with its 95% bootstrap interval). With two or more
studies, each gets a folder OUT/<name>/, and OUT holds frontiers_overlay.png, comparison.md (the loss
each reaches at matched compute) and fit.json. Read from MLflow, the files are also logged as
artifacts (folder "analysis") on the sweep's parent run(s).

Compute axes: flops (training FLOPs measured from the built model), core_hours (measured device
time), tpu_v4_core_hours (FLOPs / (137.5e12 FLOP/s per TPU-v4 core x 0.36 utilisation) / 3600,
the calibration that reproduces the paper's axis).
"""

PLAN_EPILOG = """examples:
  raysweep plan --experiment raysweep-demo --budget 5e10
  raysweep plan --table benchmarks/fashion_grid_agc0.16.csv --budget 2e11
  raysweep plan --table benchmarks/fashion_grid_agc0.16.csv --core-hours 0.05

Prints the compute-optimal model size and epoch budget (from the parametric law L(N, D) under the
measured cost of an epoch), the ladder rung nearest that size and the epochs that spend the budget
on it, the learning rate from the fitted LR trend, and the predicted validation loss with a 95%
interval (from L(N, D), and from the frontier's power law). Runs nothing.

The answer is a ranked list of runs from the ladder (rung, epochs that spend the budget, LR on the
grid, predicted loss) and a verdict on the first (raysweep.analysis.verdict):
  forecast  exit 0  the budget is within 4x the largest compute measured, the run's epochs within
                    the measured ones, and the floor E identified: the loss with its 95% interval
  bound     exit 3  past the measured budgets or epochs: the loss only as a lower bound (E's lower end)
  withheld  exit 4  the floor E is not identified (its interval reaches 0): no loss forecast
Exit 2 is bad input. With --json the same verdict is in "verdict", "reasons" and "exit_code".
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    an = sub.add_parser("analyze", help="frontier, scaling laws, the paper's figures and a report from a sweep",
                        description="Analyse finished sweeps: the compute-efficient frontier and its power law, "
                                    "the parametric law L(N, D), the optimal allocation, the LR trend; figures, "
                                    "report.md and fit.json.",
                        epilog=ANALYZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _sources(an, repeat=True)
    an.add_argument("--out", type=Path, required=True, help="folder to write into (created if missing)")
    an.add_argument("--compute", choices=("flops", "core_hours", "tpu_v4_core_hours"), default="flops",
                    help="the compute axis (default: %(default)s)")
    an.add_argument("--bootstrap", type=int, default=200, metavar="N",
                    help="bootstrap replicates for the intervals (default: %(default)s; 0: no intervals)")

    pl = sub.add_parser("plan", help="forecast the compute-optimal run for a budget not yet spent (runs nothing)",
                        description="Fit a finished study and forecast, for a new compute budget, the optimal model "
                                    "size and epoch budget, the rung to train, its LR and the loss to expect.",
                        epilog=PLAN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _sources(pl, repeat=False)
    budget = pl.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget", type=float, metavar="FLOPS", help="training FLOPs of the run to plan")
    budget.add_argument("--core-hours", type=float, metavar="H",
                        help="measured core-hours of the run to plan (on the machine the study ran on)")
    pl.add_argument("--bootstrap", type=int, default=200, metavar="N",
                    help="bootstrap replicates for the intervals (default: %(default)s)")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.add_argument("--law", choices=("chinchilla", "data_constrained", "overfit", "data_constrained_overfit", "auto"),
                    default="chinchilla", help="the law that ranks the runs and predicts their loss: L(N, D) "
                    "(default), or a law for repeated data (raysweep.analysis.repeated; 'overfit' can turn over); "
                    "'auto': the one that best predicts the study's top third of compute from the rest (printed)")


def _sources(p: argparse.ArgumentParser, *, repeat: bool) -> None:
    action = "append" if repeat else "store"
    what = " (repeatable: studies are compared)" if repeat else ""
    p.add_argument("--experiment", action=action, default=[] if repeat else None, metavar="NAME",
                   help=f"MLflow experiment of the sweep; every session of it counts{what}")
    p.add_argument("--table", action=action, default=[] if repeat else None, metavar="CSV",
                   help="a results table with `raysweep table`'s columns: model,model_params,epochs,lr,seed,val_loss,"
                        f"flops,core_hours{what}")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME",
                   help="only the sweeps of this name in the experiment(s) (the parent run's name; globs allowed, "
                        "e.g. 'bench-fashion-s*'; repeatable). Needed where one experiment holds sweeps of "
                        "different recipes (models, data, batch, optimiser), which are not one study")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)")


# Loading ------------------------------------------------------------------------------------------

def _load(args: argparse.Namespace) -> list[Source]:
    from raysweep.cli.sources import load_experiment, load_table
    from raysweep.tracking import resolve_tracking_uri

    experiments = args.experiment if isinstance(args.experiment, list) else [args.experiment] * bool(args.experiment)
    tables = args.table if isinstance(args.table, list) else [args.table] * bool(args.table)
    if not experiments and not tables:
        raise SpecError("expected --experiment NAME or --table CSV, got neither", key="--experiment")
    if not isinstance(args.experiment, list) and experiments and tables:
        raise SpecError("expected one of --experiment or --table, got both", key="--table")
    uri = resolve_tracking_uri(args.tracking_uri, None) if experiments else None
    if args.sweep and not experiments:
        raise SpecError("expected --experiment with --sweep (a table holds one study), got --table", key="--sweep")
    sources = [load_experiment(e, uri, sweeps=args.sweep) for e in experiments]  # type: ignore[arg-type]
    sources += [load_table(t) for t in tables]
    names = [s.runs.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"expected distinct study names, got {dup} more than once", key="--experiment/--table")
    return sources


def _axis(name: str, sources: list[Source]):  # type: ignore[no-untyped-def]
    from raysweep.analysis.runs import ComputeAxis

    axis = ComputeAxis(name)
    for s in sources:
        if not s.runs.has_axis(axis):
            raise SpecError(f"expected every run of {s.runs.name!r} to have a positive {axis.value.replace('tpu_v4_', '')}"
                            f" value, got runs without one", key="--compute")
    return axis


def _check_out(out: Path) -> None:
    """An unwritable --out is an error before any work (and before anything is created)."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if probe == out and not out.is_dir():
        raise SpecError(f"expected a folder, got the file {str(out)!r}", key="--out")
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SpecError(f"expected a writable folder, got {str(out)!r} ({str(probe)!r} is not writable)", key="--out")


# analyze ------------------------------------------------------------------------------------------

def run_analyze(args: argparse.Namespace) -> int:
    from raysweep.analysis import figures
    from raysweep.analysis.compare import matched_compute
    from raysweep.analysis.report import comparison_report, study_report
    from raysweep.analysis.study import analyze

    if args.bootstrap < 0:
        raise SpecError(f"expected a number >= 0, got {args.bootstrap}", key="--bootstrap")
    _check_out(args.out)
    if _analyze_finetune(args):
        return 0
    sources = _load(args)
    axis = _axis(args.compute, sources)
    fits = [analyze(s.runs, axis, replicates=args.bootstrap) for s in sources]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(f"expected a folder that can be created, got {str(args.out)!r} ({err.strerror})",
                        key="--out") from None
    many = len(fits) > 1
    written: dict[str, list[Path]] = {}
    for s, fit in zip(sources, fits, strict=True):
        folder = args.out / _safe(fit.name) if many else args.out
        folder.mkdir(exist_ok=True)
        files = figures.draw_all(fit, folder)
        (folder / "report.md").write_text(study_report(fit))
        (folder / "fit.json").write_text(json.dumps(fit.to_json(), indent=2, allow_nan=False, default=_json) + "\n")
        written[fit.name] = [*files, folder / "report.md", folder / "fit.json"]
        _print_study(fit, folder)
    shared: list[Path] = []
    if many:
        matched = matched_compute(fits)
        shared.append(figures.plot_overlay(fits, args.out / figures.OVERLAY))
        (args.out / "comparison.md").write_text(comparison_report(fits, matched))
        doc = {"studies": {f.name: f.to_json() for f in fits}, "matched_compute": [m.to_json() for m in matched]}
        (args.out / "fit.json").write_text(json.dumps(doc, indent=2, allow_nan=False, default=_json) + "\n")
        shared += [args.out / "comparison.md", args.out / "fit.json"]
        print(f"comparison at matched compute: {args.out / 'comparison.md'}; overlay: {args.out / figures.OVERLAY}")
    _log_to_mlflow(sources, fits, written, shared)
    return 0


def _analyze_finetune(args: argparse.Namespace) -> bool:
    """`raysweep analyze --experiment E` where E holds a fine-tuning sweep (`raysweep finetune`):
    Figure 1 (`top1_vs_compute.png`), the power law of downstream error in pre-training compute,
    the finding-4 table and `finetune_report.md`, also logged on the fine-tuning parent runs.
    False when E holds no fine-tuning trials (a pre-training study: the usual analysis)."""
    import fnmatch

    from raysweep.analysis import write_finetune_analysis
    from raysweep.results.mlflow_rows import read_finetune_rows
    from raysweep.tracking import log_artifacts, resolve_tracking_uri

    experiments = args.experiment if isinstance(args.experiment, list) else [args.experiment] * bool(args.experiment)
    if len(experiments) != 1 or args.table:
        return False
    uri = resolve_tracking_uri(args.tracking_uri, None)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return False  # opening it would create it: the usual path says it does not exist
    try:
        rows = read_finetune_rows(uri, experiments[0])
    except Exception:  # noqa: BLE001 - a missing experiment or unusable store: the usual path says so in one line
        return False
    if args.sweep:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.sweep, g) for g in args.sweep)]
    if not rows:
        return False
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(f"expected a folder that can be created, got {str(args.out)!r} ({err.strerror})",
                        key="--out") from None
    result = write_finetune_analysis(rows, args.out, title=experiments[0])
    report = args.out / "report.md"  # where `raysweep analyze` always puts its words
    report.write_text(result.report)
    sweeps = sorted({r.sweep for r in rows})
    print(f"{experiments[0]}: {len(rows)} fine-tuning runs of {len(sweeps)} sweep(s) ({', '.join(sweeps)})")
    for line in (result.finding1, result.gain, result.finding4):
        print(f"  {line}")
    print(f"Figure 1: {result.figure}; report: {result.report_path}; table: {result.csv_path}")
    parents = sorted({r.parent for r in rows if r.parent})
    log_artifacts(uri, parents, [result.figure, report, result.report_path, result.csv_path], "analysis")
    print(f"logged the analysis as artifacts (folder 'analysis') on {len(parents)} fine-tuning parent run(s)")
    return True


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _json(x: Any) -> Any:
    raise TypeError(f"not JSON: {type(x).__name__}")


def _print_study(fit, folder: Path) -> None:  # type: ignore[no-untyped-def]
    pl = fit.power_law
    print(f"{fit.name}: {fit.n_runs} runs, {len(fit.cells)} cells, frontier {len(fit.frontier)} points "
          f"({', '.join(c.name for c in fit.frontier)})")
    if pl.ok:
        ci = f" [{pl.slope_ci.lo:.3f}, {pl.slope_ci.hi:.3f}]" if math.isfinite(pl.slope_ci.lo) else ""
        print(f"  frontier power law: loss ~ C^{pl.slope:.3f}{ci}, R^2 {pl.r2:.3f} ({fit.axis.short})")
    ch = fit.chinchilla
    if ch.ok:
        a, b = ch.allocation_exponents(1.0)
        print(f"  L(N, D) = {ch.E:.3g} + {ch.A:.3g}/N^{ch.alpha:.3f} + {ch.B:.3g}/D^{ch.beta:.3f} "
              f"({'converged' if ch.converged else 'NOT converged'}); with C = 6ND: N_opt ~ C^{a:.2f}, D_opt ~ C^{b:.2f}")
    else:
        edge = f" ({', '.join(ch.at_bounds)} at the edge of the search box)" if ch.at_bounds else ""
        print(f"  L(N, D): {ch.status}{edge}")
    tr = fit.lr_trend
    if tr.ok:
        print(f"  LR trend: lr ~ N^{tr.p:.3f} epochs^{tr.q:.3f}; {len(tr.breaks)} monotonicity break(s)")
    for w in fit.warnings:
        print(f"  warning: {w.message}")
    if not fit.warnings:
        print("  the frontier turns over inside the lattice (no edge warning)")
    if fit.corner:
        print(f"  note: the frontier ends at the lattice's corner, {fit.frontier[-1].name}; more compute still helps")
    print(f"  wrote {folder}/: report.md, fit.json, {figures_names()}")


def figures_names() -> str:
    from raysweep.analysis import figures

    return f"{figures.LOSS_VS_COMPUTE}, {figures.OPTIMAL_ALLOCATION}, {figures.LR_VS_EPOCHS}"


def _log_to_mlflow(sources: list[Source], fits: list[Any], written: dict[str, list[Path]],
                   shared: list[Path]) -> None:
    from raysweep.tracking import log_artifacts

    for s, fit in zip(sources, fits, strict=True):
        if not s.parents or s.uri is None:
            continue
        log_artifacts(s.uri, s.parents, written[fit.name] + shared, "analysis")
        print(f"logged the analysis as artifacts (folder 'analysis') on {len(s.parents)} parent run(s) of "
              f"{fit.name!r}: {', '.join(s.parents)}")


# plan ---------------------------------------------------------------------------------------------

def run_plan(args: argparse.Namespace) -> int:
    from raysweep.analysis.plan import format_plan, plan
    from raysweep.analysis.study import analyze

    budget, key = (args.budget, "--budget") if args.budget is not None else (args.core_hours, "--core-hours")
    if not (math.isfinite(budget) and budget > 0):
        raise SpecError(f"expected a positive number, got {budget}", key=key)
    if args.bootstrap < 0:
        raise SpecError(f"expected a number >= 0, got {args.bootstrap}", key="--bootstrap")
    sources = _load(args)
    axis = _axis("flops" if args.budget is not None else "core_hours", sources)
    fit = analyze(sources[0].runs, axis, replicates=args.bootstrap)
    law = None
    form, choice = args.law, None
    if form == "auto":
        from raysweep.analysis.law_choice import choose_law

        choice = choose_law(fit.cells)
        form = choice.form
    if form != "chinchilla":
        from raysweep.analysis.repeated import fit_repeated
        from raysweep.analysis.stats import Resampler

        resampler = Resampler(sources[0].runs, axis, replicates=args.bootstrap) if args.bootstrap else None
        law = fit_repeated(fit.cells, form, resampler, replicates=args.bootstrap)
    p = plan(fit, budget, law)
    if args.json:
        extra = {"law_choice": choice.to_json()} if choice is not None else {}
        print(json.dumps({"study": fit.name, **p.to_json(), **extra}, indent=2, default=str))
    else:
        if choice is not None:
            print(choice.line())
        print(format_plan(p, fit.name))
    return p.exit_code
