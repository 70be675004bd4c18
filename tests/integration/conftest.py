"""A real local Ray cluster and a real `mlflow server` process for the integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on loopback with a SQLite backend; yields its http:// URI."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = open(root / "server.log", "w")  # noqa: SIM115 - held open for the server's lifetime
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    try:
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
