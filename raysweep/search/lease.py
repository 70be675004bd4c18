"""The sweep lease: at most one driver runs a study at a time.

A second driver of a study that is still running (`raysweep run --resume` while the first one
lives) would mark the first one's running trials as interrupted, propose the same (cell, lr)
again and record everything twice. With the lease it stops at once with one line naming the
holder. The lease lives where the study lives and dies with the process that holds it, so a driver
that crashed (SIGKILL, a lost SSH session, a pre-empted head node) never blocks the resume:

- PostgreSQL: a session advisory lock keyed by the study name, held on a connection of its own
  for the driver's life. The server drops it when that connection ends. TCP keep-alives set on the
  session bound how long a client host that vanished can hold it; a holder that names a process on
  this host that no longer exists is terminated and the lease taken over. A server restart drops
  the lock: a keeper thread takes it again when the server is back.
- SQLite: `flock` on a file next to the database (`<db>.lease-<study>`), which the kernel drops
  when the process dies. The file holds who has it, for the message.
- Other storages (MySQL, ...): no lease; a warning says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

from raysweep.core.errors import SpecError

KEEP_INTERVAL_S = 10.0  # how often the keeper checks the PostgreSQL lease connection
TAKEOVER_WAIT_S = 10.0  # how long a terminated dead holder's backend is given to let go
_APP = "raysweep"  # application_name prefix of a lease connection: "raysweep <pid>@<host>"


class LeaseHeld(SpecError):
    """Another live driver runs this study."""


def holder_name() -> str:
    """Who holds a lease: this process and host (PostgreSQL keeps 63 bytes of it)."""
    return f"{_APP} {os.getpid()}@{socket.gethostname()}"[:63]


def lock_key(study: str) -> int:
    """The study's PostgreSQL advisory lock key: a signed 64-bit hash of its name."""
    return int.from_bytes(hashlib.sha256(f"raysweep/{study}".encode()).digest()[:8], "big", signed=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class Lease:
    """A held lease; `release()` (or the process ending) lets the next driver in."""

    def release(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(storage: str, study: str, *, key: str = "--resume", shown: str | None = None) -> Lease:
    """Take the lease on `study` in `storage`, or raise `LeaseHeld` (a one-line error, exit 2)
    naming the driver that holds it. `key` is the option the message blames; `shown` is how an
    error names the storage (default: its URL without the password)."""
    if storage.startswith("sqlite:///"):
        return _FileLease.take(Path(storage[len("sqlite:///"):]), study, key=key)
    if storage.startswith("sqlite"):  # in memory: no other process can see the study
        return Lease()
    if re.match(r"postgres(ql)?(\+\w+)?://", storage):
        import sqlalchemy

        try:
            return _PgLease.take(storage, study, key=key)
        except sqlalchemy.exc.OperationalError as err:  # refused, unknown host, bad password
            shown = shown or repr(sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True))
            raise SpecError(f"expected a reachable PostgreSQL database, got {shown} "
                            f"({str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__})",
                            key="search.storage") from None
    print(f"raysweep: warning: no sweep lease for {storage.split(':', 1)[0]} storage; "
          "make sure only one driver runs this sweep at a time", file=sys.stderr, flush=True)
    return Lease()


def _held(study: str, holder: str, key: str) -> LeaseHeld:
    return LeaseHeld(f"expected no other driver of study {study!r}, but {holder} runs it; "
                     "wait for it to end or stop it, then resume", key=key)


class _FileLease(Lease):
    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, db: Path, study: str, *, key: str) -> _FileLease:
        path = db.with_name(f"{db.name}.lease-{re.sub(r'[^A-Za-z0-9_.-]+', '-', study)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another driver"
                os.close(fd)
                raise _held(study, holder, key) from None
            # The holder before us unlinks the file while it still holds it: the file we locked
            # may be gone from the folder, and a third driver may lock a new one. Ours must be the
            # one at `path`.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder_name()} since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before letting go: see `take`
        os.close(self.fd)  # drops the flock
        self.fd = -1


class _PgLease(Lease):
    """A session advisory lock on a connection of its own, kept by a thread across server restarts."""

    def __init__(self, url: str, study: str) -> None:
        import sqlalchemy

        self.study = study
        self.key = lock_key(study)
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.conn: Any = None
        self.lost: str | None = None  # who holds the lock after a restart of the server gave it away
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def take(cls, url: str, study: str, *, key: str) -> _PgLease:
        lease = cls(url, study)
        holder = lease._try_lock()
        if holder is not None and lease._takeover(holder):
            holder = lease._wait_for_lock()
        if holder is not None:
            lease._close()
            raise _held(study, holder, key)
        lease._thread = threading.Thread(target=lease._keep, name="raysweep-lease", daemon=True)
        lease._thread.start()
        return lease

    def _try_lock(self) -> str | None:
        """None when the lock is ours, else who holds it."""
        import sqlalchemy

        if self.conn is None:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # who we are, for the message a second driver prints; and a client host that vanishes
            # without closing its connection lets go within about a minute (TCP keep-alives)
            for name, value in (("application_name", holder_name()), ("tcp_keepalives_idle", "30"),
                                ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "3")):
                self.conn.execute(sqlalchemy.text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value})
        if self.conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
            return None
        row = self._holder()
        return (f"{row[1] or 'a client'} (PostgreSQL backend {row[0]}, connected since {row[2]:%Y-%m-%d %H:%M:%S})"
                if row else "another driver")

    def _holder(self) -> Any:
        import sqlalchemy

        # A bigint advisory key shows as classid (high half), objid (low half), objsubid 1.
        return self.conn.execute(sqlalchemy.text(
            "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = :hi "
            "AND l.objid::bigint = :lo AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF}).first()

    def _takeover(self, holder: str) -> bool:
        """End the holder's session when it names a raysweep process on this host that is gone.
        True when a backend was told to end."""
        import sqlalchemy

        row = self._holder()
        match = re.fullmatch(rf"{_APP} (\d+)@(.+)", (row[1] if row else "") or "")
        if not match or match.group(2) != socket.gethostname()[: len(match.group(2))] or pid_alive(int(match.group(1))):
            return False
        return bool(self.conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p)"), {"p": row[0]}).scalar())

    def _wait_for_lock(self) -> str | None:
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        while True:
            holder = self._try_lock()
            if holder is None or time.monotonic() > deadline:
                return holder
            time.sleep(0.2)

    def _keep(self) -> None:
        """Check the lease connection; after a server restart, reconnect and lock again."""
        import sqlalchemy

        while not self._stop.wait(KEEP_INTERVAL_S):
            try:
                if self.conn is not None and self.lost is None:
                    self.conn.execute(sqlalchemy.text("SELECT 1"))
                    continue
                holder = self._try_lock()
            except sqlalchemy.exc.OperationalError:  # the server is down or restarted: the lock is gone
                self._drop()
                continue
            if holder is not None and self.lost is None:
                print(f"raysweep: warning: after a restart of the study's database, {holder} holds the lease "
                      f"on study {self.study!r}; two drivers now run it", file=sys.stderr, flush=True)
            self.lost = holder  # None again once the lock is ours

    def _drop(self) -> None:
        import sqlalchemy

        if self.conn is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, OSError):  # it is dead already
                self.conn.invalidate()
            self.conn = None

    def _close(self) -> None:
        import sqlalchemy

        if self.conn is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, OSError):  # a dead server: nothing to drop
                self.conn.close()  # ends the session: the server drops the lock
            self.conn = None
        self.engine.dispose()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close()
