"""`raysweep table`: finished trials of an MLflow experiment as one results table (CSV)."""

from __future__ import annotations

import argparse

from raysweep.core.errors import SpecError
from raysweep.core.records import TrialStatus


def run(args: argparse.Namespace) -> int:
    from raysweep.results.mlflow_rows import read_trials
    from raysweep.results.rows import table_cells, write_table
    from raysweep.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, None)
    try:
        rows = read_trials(uri, args.experiment, args.parent, curves=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - MLflow raises many types for an unusable store
        raise SpecError(f"expected a reachable MLflow tracking URI, got {uri!r} ({type(err).__name__})",
                        key="--tracking-uri") from None
    if not rows:
        raise SpecError(f"no finished trials in experiment {args.experiment!r} at {uri}", key="--experiment")
    from raysweep.cli.sources import one_study

    rows = one_study(rows, args.experiment, args.sweep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_table(str(args.out), (table_cells(r) for r in rows))
    print(f"wrote {len(rows)} trials ({sum(r.status == TrialStatus.DIVERGED for r in rows)} diverged) to {args.out}")
    return 0
