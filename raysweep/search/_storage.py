"""Optuna storage on a database server (PostgreSQL, MySQL) that outlives a restart of the server.

A week-long sweep keeps its study in a server that may restart under it (an upgrade, a fail-over,
`pg_ctl restart`). Optuna's `RDBStorage` keeps a pool of SQLAlchemy connections, and after a
restart every pooled connection is dead. Two engine settings carry the driver through:
- `pool_pre_ping`: each connection is tested when a session takes it from the pool, and a dead
  one is replaced by a new one, instead of failing the searcher's next read or write;
- a patient `creator`: while the server is down, a new connection is retried with back-off for up
  to `wait_s` seconds, so the searcher waits for the server rather than ending the sweep.
  The very first connection is not retried: a wrong host or password is an error at once.

And a call cut off by the restart itself (the connection dies between the ping and the reply, or
between two statements of one call) is retried on a fresh session by `PatientRDBStorage`. Every
retried call is a read or an idempotent write, but for one case: a new trial whose COMMIT was cut
off may exist twice, the second left RUNNING. The next `--resume` marks it interrupted.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import optuna
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


def _dropped(err: BaseException) -> bool:
    """Whether `err` (or its cause) says the server dropped the connection, not that the call is wrong."""
    while err is not None:
        if isinstance(err, sqlalchemy.exc.OperationalError | sqlalchemy.exc.PendingRollbackError):
            return True
        if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


class PatientRDBStorage(optuna.storages.RDBStorage):
    """`RDBStorage` whose calls are retried, each on a fresh session, when the server dropped the
    connection under them (see the module docstring)."""

    patience_s = RECONNECT_WAIT_S


def _patient(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: PatientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.patience_s
        attempt = 0
        while True:
            try:
                return method(self, *args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempt and name == "set_trial_state_values":  # the cut-off attempt did commit
                    trial_id, state = args[0], kwargs.get("state", args[1] if len(args) > 1 else None)
                    if self.get_trial(trial_id).state == state:
                        return True
                raise
            except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as err:
                if not _dropped(err) or time.monotonic() > deadline:
                    raise
            self.scoped_session.remove()  # the cut-off session cannot be used again
            attempt += 1
            time.sleep(min(float(attempt), _MAX_DELAY_S))

    return call


# What `optuna.storages._CachedStorage` and Optuna's study call on an RDB storage (private ones
# included: tests/sweep/test_private_apis.py pins them)
WRAPPED = ("create_new_study", "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
           "get_study_user_attrs", "get_study_system_attrs", "set_study_user_attr", "set_study_system_attr",
           "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
           "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
           "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
           "_get_trials", "get_best_trial", "_get_best_trial_id")
for _name in WRAPPED:
    setattr(PatientRDBStorage, _name, _patient(_name))
