"""Where a sweep's Ray comes from: the cluster in `RAY_ADDRESS`, a live local cluster, or its own.

`ray.init()` with no address joins the cluster recorded in `<ray temp dir>/ray_current_cluster`
(written by `ray start`) and refuses `num_cpus` when it does; after a head crashed, the file stays
behind and `ray.init()` fails to connect instead of starting a cluster. So raysweep decides itself:

1. `RAY_ADDRESS` set: join that cluster, passing no resources (`local` starts our own, as in Ray).
2. Otherwise a `ray_current_cluster` whose GCS answers: join it (a head started with `ray start`).
3. Otherwise start a private cluster with `address="local"`, which never reads the file, so a
   stale file from a crashed head is ignored.

The private cluster is closed: it listens on loopback only and asks every client for Ray's auth
token (`own_cluster_closed`; `tests/integration/test_own_cluster_closed.py` keeps it so).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
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
    with own_cluster_closed():
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=log_to_driver,
                 logging_level=_level(log_to_driver))
    stale = f" (ignoring {recorded} in ray_current_cluster: nothing answers there)" if recorded else ""
    return Connection(started=True, how=f"a Ray cluster of its own on this machine{stale}")


# Ray 2.60 turns a node IP of 127.0.0.1 given to `ray.init` into the machine's routable address
# (`services.resolve_ip_for_localhost`) and its gRPC servers bind every interface unless the node's
# IP is loopback. The one switch that gives a Linux node the loopback IP is the one Ray keeps for
# single-machine Windows and macOS clusters: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, read once into
# `ray_constants.ENABLE_RAY_CLUSTER` when Ray is imported. Then the GCS, the raylet, the workers
# and the agents all listen on 127.0.0.1 (measured: tests/integration/test_own_cluster_closed.py).
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_AUTH_MODE = "RAY_AUTH_MODE"


@contextlib.contextmanager
def own_cluster_closed() -> Iterator[None]:
    """Around the `ray.init` that starts raysweep's own cluster: every Ray process listens on
    loopback only, and token auth is on whatever `RAY_AUTH_MODE` said.

    The environment is changed for the processes `ray.init` starts, which keep it, and put back
    in this process afterwards (a later `ray.init` here may join a real, multi-machine cluster).
    """
    from ray._private import ray_constants

    saved_env = {k: os.environ.get(k) for k in (_SINGLE_MACHINE, _AUTH_MODE)}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    mode = (saved_env[_AUTH_MODE] or "").strip()
    if mode and mode.lower() != "token":
        print(f"raysweep: {_AUTH_MODE}={mode} ignored: raysweep's own Ray cluster always asks for its token",
              file=sys.stderr, flush=True)
        os.environ.pop(_AUTH_MODE)  # unset: Ray turns token auth on for a new local cluster
    os.environ[_SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        # RAY_AUTH_MODE stays "token" as Ray set it: this process is the cluster's driver
        before = saved_env[_SINGLE_MACHINE]
        if before is None:
            os.environ.pop(_SINGLE_MACHINE, None)
        else:
            os.environ[_SINGLE_MACHINE] = before
