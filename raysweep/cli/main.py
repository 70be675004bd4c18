"""The `raysweep` command line: the parser, the dispatch to one module per command, and the guard
that turns bad input into one line and exit code 2.

Bad input (a YAML typo, an unknown model, a malformed override) ends in one line naming the file,
the key and what was expected, with exit code 2, before Ray is started.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from raysweep.cli import bench, finetune, ladders, run, study, table, upload
from raysweep.cli.preflight import positive_int, results_location
from raysweep.core.errors import SpecError
from raysweep.core.redact import quiet_mlflow_urls, redact_text

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
    run.add_argument("--results", default=os.environ.get("RAYSWEEP_RESULTS") or "raysweep_results",
                     type=results_location,
                     help="folder or s3:// / gs:// URL for Ray Tune/Train results and checkpoints (and, in a folder, "
                          "the Optuna study); on a cluster, one every node sees (default: $RAYSWEEP_RESULTS, else "
                          "%(default)s)")
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
                                       "val_loss,flops,core_hours,curve (diverged trials carry inf; curve: the "
                                       "validation loss at every evaluation point, frac:loss;... with frac = step / "
                                       "total steps): the table that `raysweep bench searcher --table` replays.")
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
    study.add_parsers(sub)
    finetune.add_parser(sub)
    sub.add_parser("data", add_help=False, help="write and inspect sharded datasets: data convert, data inspect")

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
    quiet_mlflow_urls()
    if len(argv) >= 2 and argv[0] == "bench" and argv[1] in bench.BENCHES:
        return _guard(lambda: bench.BENCHES[argv[1]](argv[2:]))
    if argv and argv[0] == "data":  # imported here: the data layer loads torch
        from raysweep.cli.data import main as data_main

        return _guard(lambda: data_main(argv[1:], _Parser))
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        print(redact_text(str(err)), file=sys.stderr)
        return 2
    if args.command in COMMANDS:
        return _guard(lambda: COMMANDS[args.command](args))
    raise AssertionError(args.command)


# one function per subcommand, each in its own module
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": run.run, "ladders": ladders.run, "table": table.run, "upload": upload.run,
    "analyze": study.run_analyze, "plan": study.run_plan, "finetune": finetune.run,
}


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
