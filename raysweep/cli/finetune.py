"""`raysweep finetune SPACE.yaml --dry-run`: the command line's side of fine-tuning.

Reads the pre-training sweep back from MLflow (`raysweep.results.mlflow_rows.read_trials`), picks
the checkpoints (`raysweep.finetune`) and prints the plan. Until the fine-tuning trials are built,
only `--dry-run` runs; without it the command says so in one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raysweep.core.errors import SpecError
from raysweep.results.rows import TrialRow

KEY = "finetune"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("finetune", help="fine-tune a pre-training sweep's kept checkpoints (--dry-run: the plan)")
    fill_parser(p)
    return p


def fill_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", type=Path, help="the pre-training search space with a finetune: section")
    p.add_argument("--dry-run", action="store_true",
                   help="list the chosen checkpoints, why each was chosen, and the fine-tuning FLOPs; run nothing")
    p.add_argument("--tracking-uri", default=None,
                   help="the MLflow store the pre-training was recorded in (default: as `raysweep run`)")


def run(args: argparse.Namespace) -> int:
    from raysweep.cli.preflight import preflight
    from raysweep.finetune.plan import make_plan, report, verify
    from raysweep.finetune.select import pretrained_from_rows
    from raysweep.finetune.spec import load_finetune
    from raysweep.tracking import resolve_tracking_uri

    space = load_finetune(args.space)
    file = space.file
    if not args.dry_run:
        raise SpecError("expected --dry-run: the fine-tuning trials are not built yet (issue 14); the dry run "
                        "lists what they will be", key="--dry-run")
    shape = downstream_shape(space.finetune.data, file, dry_run=args.dry_run)
    uri = resolve_tracking_uri(args.tracking_uri, space.sweep.tracking.uri)
    rows, source = read_pretraining(space.experiment, uri, space.finetune.pretrained.sweeps, file=file)
    trials = pretrained_from_rows(rows)
    # runs record the shape their model was built at; older ones need the pre-training data read here
    pre_shape = None if all(all(t.shape) for t in trials) else preflight(space.sweep, file, dry_run=True)
    plan = make_plan(space, trials, pre_shape, shape, source=source)
    read = verify(plan)
    print(report(plan, verified_bytes=read))
    return 0


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
