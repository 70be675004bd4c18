"""`raysweep upload`: send a sweep's tracking journal to MLflow (what an outage kept back)."""

from __future__ import annotations

import argparse

from raysweep.core.errors import SpecError


def run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    from raysweep.tracking import resolve_tracking_uri
    from raysweep.tracking.journal import JOURNAL, Journal, display_uri
    from raysweep.tracking.writer import is_transient, upload

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
