"""Where a sweep's Ray comes from: the cluster in `RAY_ADDRESS`, a live local cluster, or its own.

`ray.init()` with no address joins the cluster recorded in `<ray temp dir>/ray_current_cluster`
(written by `ray start`) and refuses `num_cpus` when it does; after a head crashed, the file stays
behind and `ray.init()` fails to connect instead of starting a cluster. So raysweep decides itself:

1. `RAY_ADDRESS` set: join that cluster, passing no resources (`local` starts our own, as in Ray).
2. Otherwise a `ray_current_cluster` whose GCS answers: join it (a head started with `ray start`).
3. Otherwise start a private cluster with `address="local"`, which never reads the file, so a
   stale file from a crashed head is ignored.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from raysweep.core.errors import SpecError

_PROBE_TIMEOUT_S = 2.0  # a live GCS accepts at once; a crashed head's port refuses at once


@dataclass(frozen=True)
class Connection:
    started: bool  # True: raysweep started this cluster and must shut it down
    how: str  # one line for the console: which cluster the sweep runs on


def ray_temp_dir() -> str:
    """Ray's default temp folder (`$RAY_TMPDIR/ray`, else `$TMPDIR/ray`, else `/tmp/ray`)."""
    from ray._common.utils import get_default_ray_temp_dir

    return get_default_ray_temp_dir()


def recorded_address(temp_dir: str | None = None) -> str | None:
    """The GCS address `ray start` recorded on this machine, if any (live or not)."""
    path = os.path.join(temp_dir or ray_temp_dir(), "ray_current_cluster")
    try:
        with open(path) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def answers(address: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether something listens at `host:port` (a GCS that crashed leaves its port closed)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _level(verbose: bool) -> int:
    """Ray's own start-up lines (token auth, "Started a local Ray instance") only when asked for."""
    import logging

    return logging.INFO if verbose else logging.ERROR


def connect(*, log_to_driver: bool = True) -> Connection:
    """Initialise Ray for a sweep (see the module docstring for the order)."""
    import ray

    if ray.is_initialized():
        return Connection(started=False, how="the Ray session already open in this process")
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "local":
        if env != "auto" and "://" not in env and not answers(env):
            # ray.init() would retry an address where nothing listens for minutes before failing
            raise SpecError(f"expected a reachable Ray cluster, got RAY_ADDRESS={env!r}: nothing answers there",
                            key="$RAY_ADDRESS")
        try:
            # No address argument: Ray reads RAY_ADDRESS itself, and passing resources would fail.
            ray.init(log_to_driver=log_to_driver, logging_level=_level(log_to_driver))
        except ConnectionError as err:
            raise SpecError(f"expected a reachable Ray cluster, got RAY_ADDRESS={env!r} ({err})",
                            key="$RAY_ADDRESS") from None
        return Connection(started=False, how=f"the Ray cluster at RAY_ADDRESS={env}")
    recorded = None if env == "local" else recorded_address()
    if recorded and answers(recorded):
        # address=None (not the address itself) so that Ray enables token auth for a local cluster
        # found automatically, as it does for `ray.init()`; an explicit address never does.
        ray.init(log_to_driver=log_to_driver, logging_level=_level(log_to_driver))
        return Connection(started=False, how=f"the running local Ray cluster at {recorded}")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=log_to_driver,
             logging_level=_level(log_to_driver))
    stale = f" (ignoring {recorded} in ray_current_cluster: nothing answers there)" if recorded else ""
    return Connection(started=True, how=f"a Ray cluster of its own on this machine{stale}")
