"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per trial.

`store` holds the sweep tracker and the tracking-URI rules; every write goes through the durable
`journal` and is sent by the background `writer`, which retries while the store is down.

May import: `raysweep.core`, `raysweep.config` and MLflow (no Ray, no analysis).
"""

from raysweep.tracking.store import (
    CWD_STORE,
    PARENT_TAG,
    SweepTracker,
    TrialRun,
    flatten,
    log_artifacts,
    read_metric,
    resolve_tracking_uri,
    tracking_uri_source,
)

__all__ = [
    "CWD_STORE",
    "PARENT_TAG",
    "SweepTracker",
    "TrialRun",
    "flatten",
    "log_artifacts",
    "read_metric",
    "resolve_tracking_uri",
    "tracking_uri_source",
]
