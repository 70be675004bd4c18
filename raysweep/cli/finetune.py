"""`raysweep finetune SPACE.yaml [--dry-run]`: the command line's side of fine-tuning.

Reads the pre-training sweep back from MLflow (`raysweep.results.mlflow_rows.read_trials`), picks
the checkpoints (`raysweep.finetune`), re-hashes each, and prints the plan. Without `--dry-run` it
then runs the fine-tuning sweep on the sweep's machinery (`raysweep.sweep.runner.run_sweep` with
the plan's units), as its own MLflow parent run tagged with the pre-training parents it read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raysweep.cli.preflight import positive_int, results_location
from raysweep.core.errors import SpecError
from raysweep.results.rows import TrialRow

KEY = "finetune"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("finetune", help="fine-tune a pre-training sweep's kept checkpoints (--dry-run: the plan)")
    fill_parser(p)
    return p


def fill_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", type=Path, help="the pre-training search space with a finetune: section")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field by dotted path, e.g. --set finetune.epochs=4 or --set batch_size=32 "
                        "(repeatable; validated like the file)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the chosen checkpoints, why each was chosen, and the fine-tuning FLOPs; run nothing")
    p.add_argument("--tracking-uri", default=None,
                   help="the MLflow store the pre-training was recorded in, and the fine-tuning will be "
                        "(default: as `raysweep run`)")
    p.add_argument("--results", default=os.environ.get("RAYSWEEP_RESULTS") or "raysweep_results",
                   type=results_location,
                   help="folder or s3:// / gs:// URL for the fine-tuning trials' Ray results and checkpoints "
                        "(and, in a folder, their study) (default: "
                        "$RAYSWEEP_RESULTS, else %(default)s)")
    p.add_argument("--max-trials", type=positive_int, default=None, metavar="N",
                   help="stop after N fine-tuning trials have finished in this session (--resume continues)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest fine-tuning study of this space (finished trials are not run again)")
    p.add_argument("--quiet", action="store_true", help="no line per finished trial, only the final summary")


def run(args: argparse.Namespace) -> int:
    from raysweep.cli.preflight import preflight
    from raysweep.finetune.plan import make_plan, report, verify
    from raysweep.finetune.select import pretrained_from_rows
    from raysweep.finetune.spec import load_finetune
    from raysweep.tracking import resolve_tracking_uri

    space = load_finetune(args.space, getattr(args, "overrides", ()))
    file = space.file
    shape = downstream_shape(space.finetune.data, file, dry_run=args.dry_run)
    uri = resolve_tracking_uri(args.tracking_uri, space.sweep.tracking.uri)
    rows, source = read_pretraining(space.experiment, uri, space.finetune.pretrained.sweeps, file=file)
    trials = pretrained_from_rows(rows)
    # runs record the shape their model was built at; older ones need the pre-training data read here
    pre_shape = None if all(all(t.shape) for t in trials) else preflight(space.sweep, file, dry_run=True)
    plan = make_plan(space, trials, pre_shape, shape, source=source)
    read = verify(plan)
    print(report(plan, verified_bytes=read), flush=True)
    if args.dry_run:
        return 0
    return launch(space, plan, args, uri)


def launch(space: Any, plan: Any, args: argparse.Namespace, uri: str) -> int:
    """Run the plan's fine-tuning trials as a sweep, then say where its results are."""
    from raysweep.cli.preflight import preflight_stores
    from raysweep.cli.run import browse_line
    from raysweep.core.records import Tag
    from raysweep.finetune.units import trial_spec, units_of
    from raysweep.sweep.runner import run_sweep

    spec = trial_spec(space)
    units = units_of(plan)
    preflight_stores(spec, args, uri)
    parents = sorted({t.parent for c in plan.choices for t in c.choice.trials if t.parent})
    tags = {Tag.KIND: Tag.KIND_FINETUNE_SWEEP, Tag.PRETRAINING_PARENTS: ",".join(parents)}
    print(f"\nraysweep: fine-tuning sweep {spec.name}: {len(units)} units (checkpoint or scratch rung, seed, k) x "
          f"{len(spec.lr_grid())} LRs, searcher {spec.search.searcher}; experiment {spec.tracking.experiment!r}",
          flush=True)
    try:
        out = run_sweep(spec, source=str(args.space), tracking_uri=uri, results_dir=args.results,
                        verbose=0 if args.quiet else 1, max_trials=args.max_trials, resume=args.resume,
                        units={u.name: u.to_dict() for u in units}, parent_tags=tags)
    except SpecError as err:
        raise (err if (err.key or "").startswith(("--", "$")) else err.located(file=file_of(args))) from None
    done = sum(r.best_lr is not None for r in out.rows)
    print(f"\n{out.trials} fine-tuning trials in {out.wall_s:.1f} s; {done} of {len(units)} units have a best LR")
    from raysweep.core.redact import redact_url

    print(f"MLflow parent run {out.parent_run_id} in experiment {spec.tracking.experiment!r}; Figure 1 and the "
          f"finding-4 table: raysweep analyze --experiment {spec.tracking.experiment} --tracking-uri "
          f"{redact_url(uri)}; browse with:")
    print(browse_line(uri, spec.tracking.experiment))
    if out.unsent is not None:
        from raysweep.cli.run import unsent_line

        print(unsent_line(out.unsent, spec.tracking.flush_timeout_s))
        return 2
    if out.interrupted:
        from raysweep.sweep.stop_signals import exit_code

        return exit_code(out.interrupted_by)
    return 0


def file_of(args: argparse.Namespace) -> str:
    return str(args.space)


def downstream_shape(data: Any, file: str, *, dry_run: bool) -> Any:
    """The downstream data's shape, read from the data (or, in a dry run, from finetune.data.assume)."""
    from raysweep.data import load_splits
    from raysweep.data.shape import DataShape

    try:
        splits = load_splits(data, verify=True)
    except (FileNotFoundError, SpecError) as err:
        assume = data.assume
        if dry_run and assume is not None:
            return DataShape(assume.train_examples, None, assume.num_classes, assume.in_chans, data.image_size,
                             assumed=True)
        if isinstance(err, SpecError):
            raise err.located(file=file, key_prefix=f"{KEY}.data") from None
        raise SpecError(f"expected a downstream dataset that can be read, got: {err}", file=file,
                        key=f"{KEY}.data") from None
    return DataShape(len(splits.train), len(splits.val), splits.num_classes, splits.in_chans, splits.image_size)


def read_pretraining(experiment: str, uri: str, sweeps: Sequence[str], *, file: str
                     ) -> tuple[list[TrialRow], str]:
    """The finished pre-training trials of `experiment` (its sweeps matching `sweeps`), as rows."""
    from mlflow.exceptions import MlflowException

    from raysweep.cli.sources import one_study
    from raysweep.core.redact import redact_url
    from raysweep.results.mlflow_rows import read_trials

    key = f"{KEY}.pretrained.experiment"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise SpecError(f"expected an existing MLflow SQLite store, got {redact_url(uri)!r}, which does not exist",
                        key="--tracking-uri")
    try:
        rows = read_trials(uri, experiment)
    except FileNotFoundError:
        raise SpecError(f"expected an MLflow experiment at {redact_url(uri)}, got {experiment!r}, which does not "
                        f"exist", file=file, key=key) from None
    except MlflowException as err:
        raise SpecError(f"expected a usable MLflow tracking URI, got {redact_url(uri)!r} ({type(err).__name__})",
                        key="--tracking-uri") from None
    if not rows:
        raise SpecError(f"expected finished pre-training trials in experiment {experiment!r}, got none",
                        file=file, key=key)
    try:
        rows = one_study(rows, experiment, sweeps, key=key)
    except SpecError as err:
        raise SpecError(err.detail, file=file, key=f"{KEY}.pretrained.sweeps" if err.key == "--sweep" else key
                        ) from None
    sessions = len({r.parent for r in rows if r.parent})
    return rows, f"MLflow experiment {experiment!r} ({len(rows)} finished trials, {sessions} session(s))"
