"""A real local Ray cluster and a real `mlflow server` process for the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ray_head import free_port


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    import ray

    # address="local": a cluster of the tests' own, even where a head is running on the machine
    # (ray.init() would join it and refuse num_cpus) or a crashed one left its address file behind
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on loopback with a SQLite backend; yields its http:// URI."""
    from tests.integration.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port())
    server.start()
    try:
        yield server.uri
    finally:
        server.kill(signal.SIGTERM)


# --- A real PostgreSQL server, started in a scratch folder and stopped by its process id ---------

PG_PASSWORD = "raysweep-test-pw"


def _pg_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries (`apt-get install postgresql`, `make services`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class Postgres:
    """One `postgres` server on 127.0.0.1 with its unix socket in a scratch folder.

    As root, PostgreSQL's binaries refuse to run: they run as the `postgres` user (Debian's
    package makes it), which owns the scratch folder.
    """

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.data, self.sock, self.log = root / "data", root / "sock", root / "server.log"

    def _as_owner(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)

    def init(self) -> None:
        self.sock.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:", str(self.root)], check=True)
        subprocess.run(self._as_owner(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "raysweep",
                                      f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                                      "-E", "UTF8", "--no-sync"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pwfile.unlink()

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off -c max_connections=200"
        subprocess.run(self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                      "-w", "-t", "60", "-o", opts, "start"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: sessions are ended, nothing is lost), by pid."""
        pid = self.pid()
        if pid is None:
            return
        import signal

        for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                if not (self.data / "postmaster.pid").exists():
                    return  # it removes the file as its last act; an unreaped zombie may linger
                time.sleep(0.1)

    def url(self, db: str = "postgres", *, password: bool = True) -> str:
        auth = f"raysweep:{PG_PASSWORD}" if password else "raysweep"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        """A fresh database; its URL."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server for the session; skipped only when its binaries are missing."""
    import shutil
    import tempfile

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                    "(as root: `make services`, or `apt-get install postgresql`)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root without `runuser`: PostgreSQL must run as an unprivileged user")
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="raysweep-pg-"))
    server = Postgres(bindir, root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
