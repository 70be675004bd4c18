"""Optuna storage on a database server (PostgreSQL, MySQL) that outlives a restart of the server.

A week-long sweep keeps its study in a server that may restart under it (an upgrade, a fail-over,
`pg_ctl restart`). Optuna's `RDBStorage` keeps a pool of SQLAlchemy connections, and after a
restart every pooled connection is dead. Two engine settings carry the driver through:
- `pool_pre_ping`: each connection is tested when a session takes it from the pool, and a dead
  one is replaced by a new one, instead of failing the searcher's next read or write;
- a patient `creator`: while the server is down, a new connection is retried with back-off for up
  to `wait_s` seconds, so the searcher waits for the server rather than ending the sweep.
  The very first connection is not retried: a wrong host or password is an error at once.

A statement cut off by the restart itself (the connection dies between the ping and the reply)
still fails: that window is a few milliseconds per storage call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy

RECONNECT_WAIT_S = 300.0  # how long a dead server is waited for before the sweep gives up
_FIRST_DELAY_S = 0.5  # the first retry; doubled each time up to _MAX_DELAY_S
_MAX_DELAY_S = 5.0


def is_server_url(url: str | None) -> bool:
    """Whether `url` names a database server (not SQLite, not in memory)."""
    return bool(url) and not url.startswith("sqlite")  # type: ignore[union-attr]


def patient_engine_kwargs(url: str, *, wait_s: float = RECONNECT_WAIT_S) -> dict[str, Any]:
    """SQLAlchemy `create_engine` keyword arguments for a storage that survives a server restart."""
    return {"pool_pre_ping": True, "creator": patient_connect(url, wait_s=wait_s)}


def patient_connect(url: str, *, wait_s: float = RECONNECT_WAIT_S,
                    sleep: Callable[[float], None] = time.sleep) -> Callable[[], Any]:
    """A DBAPI `connect()` for `url` that, once it has connected, retries a refused connection for
    up to `wait_s` seconds."""
    # An engine is the one public way to turn a URL into the driver's connect arguments.
    probe = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    dialect = probe.dialect
    cargs, cparams = dialect.create_connect_args(probe.url)
    dbapi_error = dialect.loaded_dbapi.OperationalError
    connected_once = False

    def connect() -> Any:
        nonlocal connected_once
        deadline = time.monotonic() + wait_s
        delay = _FIRST_DELAY_S
        while True:
            try:
                conn = dialect.connect(*cargs, **cparams)
            except dbapi_error:
                if not connected_once or time.monotonic() + delay > deadline:
                    raise
                sleep(delay)
                delay = min(2 * delay, _MAX_DELAY_S)
                continue
            connected_once = True
            return conn

    return connect
