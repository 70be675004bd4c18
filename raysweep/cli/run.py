"""`raysweep run`: validate a search space, preflight it, then launch the sweep (or print the dry run).

What it prints at the end (the per-cell table, the timings, the MLflow page) is the demo's output.
"""

from __future__ import annotations

import argparse
import sys

from raysweep.cli.preflight import check_tracking, preflight, preflight_stores
from raysweep.core.errors import SpecError
from raysweep.core.redact import redact_url


def run(args: argparse.Namespace) -> int:
    from raysweep.cli.sources import is_table
    from raysweep.config import load_spec
    from raysweep.tracking import resolve_tracking_uri

    spec = load_spec(args.space, args.overrides)
    from raysweep.cli.preflight import check_later_stages

    check_later_stages(args.space, args.overrides)
    if args.warm_start is not None:
        spec = _with_warm_start(spec, args.warm_start)
    shape = preflight(spec, str(args.space), dry_run=args.dry_run)
    uri = resolve_tracking_uri(args.tracking_uri, spec.tracking.uri)
    if not args.dry_run:
        preflight_stores(spec, args, uri)
    elif spec.search.warm_start is not None and not is_table(spec.search.warm_start):
        check_tracking(spec, args, uri)  # a dry run reads the earlier study from MLflow, and nothing else
    warm = _warm_start(spec, args, uri, shape)
    if args.dry_run:
        from raysweep.cli.dryrun import report

        print(report(spec, shape, warm=warm))
        return 0

    print(f"raysweep: sweep {spec.name}: {len(spec.ladder.rungs)} models x {len(spec.epochs)} budgets, "
          f"searcher {spec.search.searcher}; tracking at {redact_url(uri)}", flush=True)
    try:
        out = _launch(spec, args, uri, warm)
    except SpecError as err:  # keys of the YAML file name the file; command-line flags do not
        # command-line flags (--x) and the environment ($X) are not keys of the file
        raise (err if (err.key or "").startswith(("--", "$")) else err.located(file=str(args.space))) from None
    return report_end(spec, args, uri, out)


def report_end(spec, args: argparse.Namespace, uri: str, out) -> int:  # type: ignore[no-untyped-def]
    """What a sweep prints when it ends (a `SweepOutcome`), and the command's exit code."""
    from raysweep.analysis.summary import format_summary

    print()
    print(format_summary(out.rows))
    print()
    print(f"{out.trials} trials in {out.wall_s:.1f} s; per trial (median): wall {out.median_trial_wall_s:.2f} s, "
          f"in the training loop {out.median_loop_s:.2f} s, overhead {out.median_overhead_s:.2f} s")
    if out.ideal_s > 0:
        print(f"makespan {out.wall_s:.1f} s against an ideal of {out.ideal_s:.1f} s (trial time / concurrent trials): "
              f"{out.wall_s / out.ideal_s:.2f}x")
    if out.grid_edge:
        print(out.grid_edge)
    cells = len(spec.ladder.rungs) * len(spec.epochs)
    hint = ""
    if out.unsettled:
        from raysweep.search import searcher_row

        hint = ("continue it with the same command plus --resume" if searcher_row(spec.search.searcher).resumable
                else f"the {spec.search.searcher} searcher cannot resume; run it again")
        print(f"the sweep stopped with {cells - len(out.unsettled)} of {cells} cells settled: {hint}")
    # Nothing asked the sweep to stop (no --max-trials, no signal), yet cells are unsettled: Ray Tune
    # ended early (trials that could not start or report). Or every trial of a cell failed. Either
    # way the sweep did not do its job, and a script must be able to tell: exit 1, one line each.
    cut_short = bool(out.unsettled) and not out.interrupted and args.max_trials is None
    errors = []
    if cut_short:
        errors.append(f"raysweep: error: the sweep ended with {len(out.unsettled)} of {cells} cells unsettled "
                      f"({_cells(out.unsettled)}) though nothing stopped it: its trials could not run to the end "
                      f"(see the log above; is the Ray cluster still up?); {hint}")
    if out.all_failed:
        errors.append(f"raysweep: error: every trial of {len(out.all_failed)} cell(s) failed ({_cells(out.all_failed)}): "
                      "nothing trained there and no LR was judged; see the failed trials' errors in the log above "
                      "and in MLflow, fix the cause, then run the sweep again")
    if out.unsent is not None:
        print(unsent_line(out.unsent, spec.tracking.flush_timeout_s), file=sys.stderr)
        return 2
    print(f"MLflow parent run {out.parent_run_id} in experiment {spec.tracking.experiment!r}; browse with:")
    print(browse_line(uri, spec.tracking.experiment))
    if out.interrupted:  # the shell's code for a command ended by the signal: 130 Ctrl-C, 143 SIGTERM
        from raysweep.sweep.stop_signals import exit_code, interrupted_line

        print(interrupted_line(out.interrupted_by), file=sys.stderr)
        return exit_code(out.interrupted_by)
    for line in errors:
        print(line, file=sys.stderr)
    return 1 if errors else 0


def _cells(names: tuple[str, ...], shown: int = 6) -> str:
    """Cell names for a one-line message: the first few, then how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def browse_line(uri: str, experiment: str) -> str:
    """How to open an experiment's runs in the MLflow UI (the URI's password masked)."""
    page = experiment_page(uri, experiment)
    if uri.startswith(("http://", "https://")):  # a server: it is its own UI
        return f"  open {redact_url(uri.rstrip('/'))}/{page} in a browser"
    return f"  mlflow ui --backend-store-uri {redact_url(uri)}   # then open http://127.0.0.1:5000/{page}"


def experiment_page(uri: str, experiment: str) -> str:
    """The MLflow UI page of an experiment's training runs. MLflow 3's UI opens in its GenAI mode
    (traces) unless the page asks for the model-training one."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except MlflowException:  # the store is down right now: the runs page of the UI's own choice
        exp = None
    where = f"#/experiments/{exp.experiment_id}" if exp is not None else "#/experiments"
    return f"{where}?workflowType=machine_learning"


def unsent_line(b, timeout_s: float) -> str:  # type: ignore[no-untyped-def]
    """The one line a sweep ends with when MLflow did not take its records (a `Backlog`)."""
    from raysweep.tracking.journal import display_uri

    uri = display_uri(b.uri)
    return (f"raysweep: error: MLflow at {uri} did not take {b.unsent} tracking records ({b.runs_pending} of them "
            f"new runs) within tracking.flush_timeout_s={timeout_s:g} s ({b.error[:160]}); they are kept in "
            f"{b.folder}; send them with: raysweep upload {b.folder} --tracking-uri {uri}")


def _launch(spec, args: argparse.Namespace, uri: str, warm=None):  # type: ignore[no-untyped-def]
    from raysweep.sweep.runner import run_sweep

    return run_sweep(spec, source=str(args.space), tracking_uri=uri, results_dir=args.results,
                     verbose=0 if args.quiet else 2 if args.ray_output else 1, max_trials=args.max_trials,
                     resume=args.resume, warm_start=warm)


def _with_warm_start(spec, source: str):  # type: ignore[no-untyped-def]
    """The spec with --warm-start's source as search.warm_start, validated under the flag's name."""
    import dataclasses

    search = dataclasses.replace(spec.search, warm_start=source)
    try:
        search.validate()
    except SpecError as err:
        raise SpecError(err.detail, key="--warm-start") from None
    return dataclasses.replace(spec, search=search)


def _warm_start(spec, args: argparse.Namespace, uri: str, shape):  # type: ignore[no-untyped-def]
    """The sweep's warm-start plan, or None; prints the line that describes the earlier study's trend."""
    if spec.search.warm_start is None:
        return None
    from raysweep.cli.warm_plan import build_warm_plan, describe

    flag = args.warm_start is not None
    try:
        plan, trend = build_warm_plan(spec, uri, shape, key="--warm-start" if flag else "search.warm_start")
    except SpecError as err:
        raise (err if flag or (err.key or "").startswith(("--", "$")) or err.file
               else err.located(file=str(args.space))) from None
    print(describe(plan, trend, spec.lr_grid()), flush=True)
    return plan
