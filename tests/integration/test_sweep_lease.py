"""The sweep lease against real holders: other processes killed by pid, a real PostgreSQL restarted.

One driver per study: a second one gets `LeaseHeld` naming the first; a holder that dies (SIGKILL)
lets the next driver in; a PostgreSQL restart neither loses the study's storage nor the lease.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from raysweep.search import lease
from raysweep.search._study import open_storage

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from raysweep.search import lease; lease.acquire(sys.argv[1], sys.argv[2]); " \
       "print('held', flush=True); time.sleep(600)"


@pytest.fixture
def holder() -> Iterator:
    """Start a process that takes the lease and keeps it; every one started is killed at the end."""
    procs: list[subprocess.Popen] = []

    def start(storage: str, study: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-c", HOLD, storage, study], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n", proc.stderr.read()  # type: ignore[union-attr]
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def take_within(storage: str, study: str, seconds: float) -> lease.Lease:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return lease.acquire(storage, study)
        except lease.LeaseHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_sqlite_one_driver_per_study_and_a_killed_holder_lets_go(tmp_path: Path, holder) -> None:  # type: ignore[no-untyped-def]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = holder(storage, "s-1")
    with pytest.raises(lease.LeaseHeld) as err:
        lease.acquire(storage, "s-1")
    assert f"raysweep {proc.pid}@" in str(err.value) and "--resume" in str(err.value)
    assert "\n" not in str(err.value)
    lease.acquire(storage, "another-study").release()  # a lease is per study
    os.kill(proc.pid, signal.SIGKILL)  # a crashed driver
    proc.wait(timeout=30)
    mine = lease.acquire(storage, "s-1")  # the kernel dropped its lock at once
    with pytest.raises(lease.LeaseHeld):
        lease.acquire(storage, "s-1")  # also within one process
    mine.release()
    assert not list(tmp_path.glob("optuna.db.lease-*")), "a released lease leaves no file"
    lease.acquire(storage, "s-1").release()


@pytest.mark.slow
def test_postgres_one_driver_per_study_and_a_killed_holder_lets_go(postgres, holder) -> None:  # type: ignore[no-untyped-def]
    url = postgres.create_db("lease_kill")
    proc = holder(url, "s-1")
    with pytest.raises(lease.LeaseHeld) as err:
        lease.acquire(url, "s-1")
    message = str(err.value)
    assert f"raysweep {proc.pid}@{socket.gethostname()}" in message and "\n" not in message
    assert postgres.url().split("@")[0].split(":")[-1] not in message  # no password in the message
    lease.acquire(url, "another-study").release()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    take_within(url, "s-1", 10).release()  # the server ends the dead client's session and drops its lock


@pytest.mark.slow
def test_postgres_lease_held_for_a_process_that_is_gone_is_taken_over(postgres) -> None:  # type: ignore[no-untyped-def]
    """A lock whose session outlived its driver (a half-open connection) names a pid that is gone:
    the next driver ends that session and takes the lease."""
    url = postgres.create_db("lease_stale")
    gone = subprocess.Popen(["true"])
    gone.wait()
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    stale = engine.connect()
    try:
        stale.execute(sqlalchemy.text("SELECT set_config('application_name', :v, false)"),
                      {"v": f"raysweep {gone.pid}@{socket.gethostname()}"})
        assert stale.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": lease.lock_key("s-1")}).scalar()
        mine = lease.acquire(url, "s-1")
        with pytest.raises(sqlalchemy.exc.OperationalError):
            stale.execute(sqlalchemy.text("SELECT 1"))  # its session was ended
        mine.release()
        # a holder that is alive is never taken over
        live = engine.connect()
        live.execute(sqlalchemy.text("SELECT set_config('application_name', :v, false)"),
                     {"v": f"raysweep {os.getpid()}@{socket.gethostname()}"})
        assert live.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": lease.lock_key("s-2")}).scalar()
        with pytest.raises(lease.LeaseHeld):
            lease.acquire(url, "s-2")
        live.close()
    finally:
        stale.invalidate()
        engine.dispose()


@pytest.mark.slow
def test_postgres_restart_keeps_the_study_storage_and_the_lease(postgres, monkeypatch, holder) -> None:  # type: ignore[no-untyped-def]
    url = postgres.create_db("lease_restart")
    monkeypatch.setattr(lease, "KEEP_INTERVAL_S", 0.5)
    mine = lease.acquire(url, "s-1")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s-1")
    study.tell(study.ask(), 1.0)

    postgres.stop()
    time.sleep(3)
    postgres.start()
    # the storage reconnects (pool_pre_ping) and the trial in flight across the restart is kept
    trial = study.ask()
    study.tell(trial, 0.5)
    assert [t.value for t in optuna.load_study(study_name="s-1", storage=url).trials] == [1.0, 0.5]
    # the keeper takes the lock again once the server is back: another driver is still kept off
    deadline = time.monotonic() + 15
    while True:
        try:
            probe = lease.acquire(url, "s-1")
        except lease.LeaseHeld:
            break
        probe.release()
        assert time.monotonic() < deadline, "the lease was not taken again after the restart"
        time.sleep(0.3)
    mine.release()
    take_within(url, "s-1", 5).release()


@pytest.mark.slow
def test_postgres_storage_call_whose_connection_the_server_ends_is_retried(postgres) -> None:  # type: ignore[no-untyped-def]
    """The server ends the storage's session right before a statement of a storage call (as a
    restart or fail-over does): the call is retried on a fresh session, and nothing is doubled."""
    url = postgres.create_db("storage_kill")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    for v in (3.0, 2.0):
        study.tell(study.ask(), v)
    engine = storage._backend.engine  # type: ignore[attr-defined]
    killer = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    kills = {"SELECT": 2, "INSERT": 1, "UPDATE": 1}  # cut the next statements of these kinds
    done: list[str] = []

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def end_session(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        kind = statement.lstrip().split(None, 1)[0].upper()
        if kills.get(kind):
            kills[kind] -= 1
            pid = conn.connection.dbapi_connection.info.backend_pid
            with killer.connect() as k:
                assert k.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar()
            done.append(kind)

    try:
        fresh = optuna.load_study(study_name="s", storage=storage)  # reads through a killed session
        assert [t.value for t in fresh.trials] == [3.0, 2.0]
        fresh.tell(fresh.ask(), 1.0)  # a new trial and its result, through killed sessions
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", end_session)
        killer.dispose()
    assert sorted(done) == ["INSERT", "SELECT", "SELECT", "UPDATE"], done
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [(t.value, t.state.name) for t in trials] == [(3.0, "COMPLETE"), (2.0, "COMPLETE"), (1.0, "COMPLETE")]
