"""The `raysweep` command line: run a sweep, preview it, replay searchers, list ladders.

Bad input (a YAML typo, an unknown model, a malformed override) ends in one line naming the file,
the key and what was expected, with exit code 2, before Ray is started.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from raysweep import study_cmd
from raysweep.errors import SpecError
from raysweep.redact import redact_text, redact_url

EPILOG_RUN = """examples:
  raysweep run search_spaces/demo.yaml
  raysweep run search_spaces/demo.yaml --set search.searcher=grid --set resources.concurrent_trials=1
  raysweep run --dry-run search_spaces/fashion_ladder.yaml
  RAY_ADDRESS=http://HEAD:8265 ray job submit --working-dir . -- python -m raysweep run search_spaces/smoke.yaml

Ray: joins $RAY_ADDRESS, else a head running on this machine (`ray start --head`), else starts its own.

Results: every trial is a nested MLflow run under the sweep's parent run. Open them with
  mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db
"""


class _UsageError(Exception):
    """A malformed command line, already worded by argparse."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`raysweep run: error: ...`) and exit code 2, like bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """argparse type for counts such as --max-trials: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="raysweep",
        description="Compute-scaling sweeps of image models on Ray: model size x epoch budget x learning rate, "
                    "tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a sweep described by a search-space YAML file",
                         description="Validate a search space, join a Ray cluster (RAY_ADDRESS, or a head "
                                     "running on this machine) or start one, and "
                                     "run every trial the searcher proposes as a Ray Tune trial driving a Ray Train run.",
                         epilog=EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("space", help="search-space YAML file (see search_spaces/)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field by dotted path, e.g. --set optim.momentum=0.8 (repeatable; "
                          "validated like the file)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the cells, the trial count and the estimated training FLOPs; start nothing")
    run.add_argument("--tracking-uri", default=None,
                     help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else tracking.uri in the YAML, "
                          "else sqlite:///$PWD/mlflow.db)")
    run.add_argument("--results", default=Path(os.environ.get("RAYSWEEP_RESULTS") or "raysweep_results"), type=Path,
                     help="folder for Ray Tune/Train results, checkpoints and the Optuna study; on a cluster, one "
                          "every node sees (default: $RAYSWEEP_RESULTS, else %(default)s)")
    run.add_argument("--max-trials", type=positive_int, default=None, metavar="N",
                     help="stop after N trials have finished in this session; `--resume` continues the sweep "
                          "later from its Optuna study (every searcher but grid)")
    run.add_argument("--resume", action="store_true",
                     help="continue the newest study of this sweep (same name, same --results or "
                          "search.storage) instead of starting a new one; settled trials are not run again")
    run.add_argument("--warm-start", default=None, metavar="EXPERIMENT",
                     help="start every cell from the LR trend fitted on an earlier study (an MLflow experiment at "
                          "this sweep's tracking URI, or a results table *.csv) instead of from its lattice "
                          "predecessor; every cell is ready at once (sets search.warm_start)")
    run.add_argument("--quiet", action="store_true", help="no line per finished trial, only the final summary")
    run.add_argument("--ray-output", action="store_true",
                     help="also show Ray Tune's own trial tables (verbose; useful when debugging a cluster)")

    ladders = sub.add_parser("ladders", help="list the model ladders and their rungs with parameter counts",
                             description="List every registered ladder; parameter counts are measured from the "
                                         "built model (on the meta device, so the paper's F7+ costs nothing).")
    ladders.add_argument("--family", default=None, help="only this family")
    ladders.add_argument("--classes", type=int, default=10, help="classifier size (default: %(default)s)")
    ladders.add_argument("--image-size", type=int, default=32, help="input resolution (default: %(default)s)")
    ladders.add_argument("--in-chans", type=int, default=1, help="input channels (default: %(default)s)")

    table = sub.add_parser("table", help="export finished trials from MLflow as a results table (CSV)",
                           description="Read every finished trial of the sweeps in an MLflow experiment and write "
                                       "one CSV row per trial with the columns model,model_params,epochs,lr,seed,"
                                       "val_loss,flops,core_hours (diverged trials carry inf): the table that "
                                       "`raysweep bench searcher --table` replays.")
    table.add_argument("--experiment", required=True, help="MLflow experiment name (tracking.experiment)")
    table.add_argument("--parent", action="append", default=[], metavar="RUN_ID",
                       help="only the sweep with this parent run id (repeatable; default: every sweep)")
    table.add_argument("--sweep", action="append", default=[], metavar="NAME",
                       help="only the sweeps of this name (the parent run's name; globs allowed; repeatable). "
                            "Sweeps of different recipes (models, data, batch, optimiser) are not exported together")
    table.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default as for `run`)")
    table.add_argument("--out", type=Path, required=True, help="CSV file to write")

    upload = sub.add_parser("upload", help="send a sweep's tracking journal to MLflow (records an outage kept back)",
                            description="Replay RESULTS/SWEEP/tracking-journal.jsonl into MLflow, in order. Records "
                                        "already in that store are not written again, so running it twice is safe; "
                                        "a fresh store receives the whole sweep.")
    upload.add_argument("folder", type=Path, metavar="RESULTS/SWEEP",
                        help="the sweep's results folder, e.g. raysweep_results/demo")
    upload.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default as for `run`)")
    study_cmd.add_parsers(sub)

    bench = sub.add_parser("bench", help="benchmarks that need no cluster",
                           description="Benchmarks that need no cluster.")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    bench_sub.add_parser("searcher", add_help=False,
                         help="replay every searcher against a recorded results table (CSV)")
    bench_sub.add_parser("curves", add_help=False,
                         help="plot a results table: validation loss against LR per model and budget (PNG)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the `raysweep` command: our own bugs still show their traceback, without secrets
        sys.excepthook = _redacting_excepthook
    argv = list(sys.argv[1:] if argv is None else argv)
    # MLflow prints "View run ... at: <tracking URI>" (credentials and all) each time a run ends
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in BENCHES:
        return _guard(lambda: BENCHES[argv[1]](argv[2:]))
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        print(redact_text(str(err)), file=sys.stderr)
        return 2
    if args.command == "run":
        return _guard(lambda: _run(args))
    if args.command == "ladders":
        return _guard(lambda: _ladders(args))
    if args.command == "table":
        return _guard(lambda: _table(args))
    if args.command == "upload":
        return _guard(lambda: _upload(args))
    if args.command == "analyze":
        return _guard(lambda: study_cmd.run_analyze(args))
    if args.command == "plan":
        return _guard(lambda: study_cmd.run_plan(args))
    raise AssertionError(args.command)


def _guard(fn) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(fn() or 0)
    except (SpecError, FileNotFoundError) as err:
        print(f"raysweep: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except _UsageError as err:  # a benchmark's own parser
        print(one_line(str(err)), file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM outside the graceful stop (sweep/stop_signals.py)
        from raysweep.sweep.stop_signals import exit_code, interrupted_by, interrupted_line

        print(interrupted_line(interrupted_by(err)), file=sys.stderr)
        return exit_code(interrupted_by(err))


def one_line(text: str) -> str:
    """An error as printed: credentials redacted, on one line whatever the message held."""
    return " ".join(redact_text(text).split())


def _redacting_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, value, tb))))


def _table(args: argparse.Namespace) -> int:
    import csv

    from raysweep.tracking import TABLE_COLUMNS, read_trials, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, None)
    try:
        rows = read_trials(uri, args.experiment, args.parent)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - MLflow raises many types for an unusable store
        raise SpecError(f"expected a reachable MLflow tracking URI, got {uri!r} ({type(err).__name__})",
                        key="--tracking-uri") from None
    if not rows:
        raise SpecError(f"no finished trials in experiment {args.experiment!r} at {uri}", key="--experiment")
    from raysweep.study_source import one_study

    rows = one_study(rows, args.experiment, args.sweep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TABLE_COLUMNS)
        for r in rows:
            w.writerow([r["model"], r["model_params"], f"{r['epochs']:g}", f"{r['lr']:g}", r["seed"],
                        f"{r['val_loss']:.6g}", f"{r['flops']:.6g}", f"{r['core_hours']:.6g}"])
    print(f"wrote {len(rows)} trials ({sum(r['status'] == 'diverged' for r in rows)} diverged) to {args.out}")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    from raysweep.tracking import resolve_tracking_uri
    from raysweep.tracking_journal import JOURNAL, Journal, display_uri
    from raysweep.tracking_writer import is_transient, upload

    if not (args.folder / JOURNAL).is_file():
        raise SpecError(f"expected a sweep's results folder holding {JOURNAL}, got {args.folder}", key="RESULTS/SWEEP")
    uri = resolve_tracking_uri(args.tracking_uri, None)
    try:
        sent, left = upload(args.folder, uri)
    except (MlflowException, OSError, OperationalError) as err:
        journal = Journal(args.folder, uri)
        left = journal.unsent()
        journal.close()
        line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        what = "a reachable MLflow tracking URI" if is_transient(err) else "a store that accepts the journal's records"
        raise SpecError(f"expected {what}, got {display_uri(uri)} ({type(err).__name__}: {line[:160]}); "
                        f"{left} records still to send", key="--tracking-uri") from None
    print(f"uploaded {sent} tracking records from {args.folder} to {display_uri(uri)}; {left} left"
          if sent else f"nothing to upload: MLflow at {display_uri(uri)} holds every record of {args.folder}")
    return 0


def _ladders(args: argparse.Namespace) -> int:
    from raysweep.models import LADDERS, flops_per_example, param_count

    if args.family is not None and args.family not in LADDERS:
        raise SpecError(f"expected one of {sorted(LADDERS)}, got {args.family!r}", key="--family")
    for family, ladder in LADDERS.items():
        if args.family and family != args.family:
            continue
        print(f"{family}: {ladder.description}")
        print(f"  {'rung':<14} {'params':>14} {'train FLOPs/example':>20}")
        kw = {"num_classes": args.classes, "in_chans": args.in_chans, "image_size": args.image_size}
        for name in ladder.rung_names():
            print(f"  {name:<14} {param_count(family, name, **kw):>14,} {flops_per_example(family, name, **kw):>20.4g}")
        print()
    return 0


def _bench_searcher(argv: list[str]) -> int:
    from raysweep.bench.replay import main as bench_main

    return bench_main(argv)


def _bench_curves(argv: list[str]) -> int:
    from raysweep.bench.curves import main as curves_main

    return curves_main(argv)


# `raysweep bench NAME ...`: each benchmark parses its own arguments (and --help)
BENCHES = {"searcher": _bench_searcher, "curves": _bench_curves}


def _run(args: argparse.Namespace) -> int:
    from raysweep.config import load_spec
    from raysweep.study_source import is_table
    from raysweep.tracking import resolve_tracking_uri

    spec = load_spec(args.space, args.overrides)
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
        from raysweep.dryrun import report

        print(report(spec, shape, warm=warm))
        return 0

    print(f"raysweep: sweep {spec.name}: {len(spec.ladder.rungs)} models x {len(spec.epochs)} budgets, "
          f"searcher {spec.search.searcher}; tracking at {redact_url(uri)}", flush=True)
    try:
        out = _launch(spec, args, uri, warm)
    except SpecError as err:  # keys of the YAML file name the file; command-line flags do not
        # command-line flags (--x) and the environment ($X) are not keys of the file
        raise (err if (err.key or "").startswith(("--", "$")) else err.located(file=str(args.space))) from None
    from raysweep.analysis.summary import format_summary

    print()
    print(format_summary(out.rows))
    print()
    print(f"{out.trials} trials in {out.wall_s:.1f} s; per trial (median): wall {out.median_trial_wall_s:.2f} s, "
          f"in the training loop {out.median_loop_s:.2f} s, overhead {out.median_overhead_s:.2f} s")
    if out.ideal_s > 0:
        print(f"makespan {out.wall_s:.1f} s against an ideal of {out.ideal_s:.1f} s (trial time / concurrent trials): "
              f"{out.wall_s / out.ideal_s:.2f}x")
    settled = sum(row.best_lr is not None for row in out.rows)
    cells = len(spec.ladder.rungs) * len(spec.epochs)
    if settled < cells:
        hint = ("continue it with the same command plus --resume" if spec.search.searcher != "grid"
                else "the grid searcher cannot resume; run it again")
        print(f"the sweep stopped with {settled} of {cells} cells settled: {hint}")
    if out.unsent is not None:
        print(unsent_line(out.unsent, spec.tracking.flush_timeout_s), file=sys.stderr)
        return 2
    print(f"MLflow parent run {out.parent_run_id} in experiment {spec.tracking.experiment!r}; browse with:")
    page = experiment_page(uri, spec.tracking.experiment)
    if uri.startswith(("http://", "https://")):  # a server: it is its own UI
        print(f"  open {redact_url(uri.rstrip('/'))}/{page} in a browser")
    else:
        print(f"  mlflow ui --backend-store-uri {redact_url(uri)}   # then open http://127.0.0.1:5000/{page}")
    if out.interrupted:  # the shell's code for a command ended by the signal: 130 Ctrl-C, 143 SIGTERM
        from raysweep.sweep.stop_signals import exit_code, interrupted_line

        print(interrupted_line(out.interrupted_by), file=sys.stderr)
        return exit_code(out.interrupted_by)
    return 0


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
    from raysweep.tracking_journal import display_uri

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
    from raysweep.warm_plan import build_warm_plan, describe

    flag = args.warm_start is not None
    try:
        plan, trend = build_warm_plan(spec, uri, shape, key="--warm-start" if flag else "search.warm_start")
    except SpecError as err:
        raise (err if flag or (err.key or "").startswith(("--", "$")) or err.file
               else err.located(file=str(args.space))) from None
    print(describe(plan, trend, spec.lr_grid()), flush=True)
    return plan


def preflight(spec, file: str, *, dry_run: bool = False):  # type: ignore[no-untyped-def]
    """Check what only the data can tell before anything starts: it loads, and every budget buys a
    step. Returns the data's shape; a dry run may plan with `data.assume` where the data is absent."""
    from raysweep.data import load_splits
    from raysweep.dryrun import DataShape
    from raysweep.train.recipe import plan_steps

    try:
        splits = load_splits(spec.data, verify=True)
    except (FileNotFoundError, SpecError) as err:  # the data layer names keys within `data`
        assume = spec.data.assume
        if not (dry_run and assume is not None):
            hint = "; a dry run can plan without it from data.assume" if dry_run else ""
            if isinstance(err, SpecError):
                where = err.located(file=file, key_prefix="data")
                raise SpecError(where.detail + hint, file=where.file, key=where.key) from None
            raise SpecError(f"the dataset cannot be read: {err}{hint}", file=file, key="data") from None
        shape = DataShape(assume.train_examples, None, assume.num_classes, assume.in_chans, spec.data.image_size,
                          assumed=True)
    else:
        if spec.batch_size > len(splits.train):
            raise SpecError(f"expected at most the {len(splits.train)} training examples of {spec.data.dataset}, "
                            f"got {spec.batch_size}", file=file, key="batch_size")
        try:  # a ladder written in the file, again at the data's real channels and classes
            spec.ladder.check_models(num_classes=splits.num_classes, in_chans=splits.in_chans,
                                     image_size=splits.image_size)
        except SpecError as err:
            raise err.located(file=file) from None
        shape = DataShape(len(splits.train), len(splits.val), splits.num_classes, splits.in_chans,
                          splits.image_size)
    for i, e in enumerate(spec.epochs):
        try:
            plan_steps(n_train=shape.n_train, batch_size=spec.batch_size, epochs=e,
                       warmup_fraction=spec.optim.warmup_fraction)
        except ValueError as err:
            raise SpecError(str(err), file=file, key=f"epochs[{i}]") from None
    return shape


def preflight_stores(spec, args: argparse.Namespace, uri: str) -> None:  # type: ignore[no-untyped-def]
    """Check the results folder, the tracking store and the study storage; create none of them."""
    from raysweep.preflight import check_results_dir, check_storage_url

    check_results_dir(args.results)
    if spec.search.storage:  # local checks first, the network last
        try:
            check_storage_url(spec.search.storage)
        except SpecError as err:
            raise err.located(file=str(args.space)) from None
    check_tracking(spec, args, uri)


def check_tracking(spec, args: argparse.Namespace, uri: str) -> None:  # type: ignore[no-untyped-def]
    """The tracking store answers (a server) or can be created (a file); names where the URI came from."""
    from raysweep.preflight import check_tracking_uri

    file = str(args.space)
    # name where the URI came from, in resolve_tracking_uri's order
    source: tuple[str | None, str] = (
        (None, "--tracking-uri") if args.tracking_uri
        else (None, "$MLFLOW_TRACKING_URI") if os.environ.get("MLFLOW_TRACKING_URI")
        else (file, "tracking.uri") if spec.tracking.uri
        else (None, "the current folder (for ./mlflow.db)"))
    try:
        check_tracking_uri(uri, key=source[1])
    except SpecError as err:
        raise SpecError(err.detail, file=source[0], key=source[1]) from None


if __name__ == "__main__":
    raise SystemExit(main())
