"""A real S3-compatible server (moto in server mode) and a real GCS emulator (gcp-storage-emulator),
each started on 127.0.0.1 by the tests and reached through raysweep's production code path: the
endpoint and keys from the environment (AWS_ENDPOINT_URL_S3 / AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY; STORAGE_EMULATOR_HOST). Shared by the shard tests (tests/data) and the
results-on-a-bucket sweep (tests/integration): import the fixtures a module needs from here.

A test module that needs neither server skips itself where the package is absent
(`pip install -e .[dev]` installs both)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "rs-data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def start_moto(*, auth: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server on a free loopback port: (its process, its endpoint URL)."""
    pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (pip install -e .[dev])")
    port = free_port()
    env = dict(os.environ)
    if auth:  # the first 3 requests may go unsigned (to create a user and its key); every later one is checked
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(proc, port, "moto server")
    return proc, f"http://127.0.0.1:{port}"


def emulator_binary() -> Path | None:
    found = shutil.which("gcp-storage-emulator") or str(Path(sys.executable).with_name("gcp-storage-emulator"))
    return Path(found) if Path(found).is_file() else None


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """A moto S3 server with IAM checked: the environment that reaches it with a real key."""
    boto3 = pytest.importorskip("boto3")
    proc, endpoint = start_moto()
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="raysweep")
        key = iam.create_access_key(UserName="raysweep")["AccessKey"]
        iam.put_user_policy(UserName="raysweep", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        yield {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This test's environment points at the S3 server, whose bucket BUCKET exists."""
    from raysweep.data import store

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    store.forget_clients()
    fs = store.filesystem("s3")
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    yield s3_server
    store.forget_clients()


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """gcp-storage-emulator in memory on a free loopback port: its endpoint URL."""
    pytest.importorskip("gcsfs")
    binary = emulator_binary()
    if binary is None:
        pytest.skip("the GCS tests need gcp-storage-emulator (pip install -e .[dev])")
    port = free_port()
    proc = subprocess.Popen([str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(proc, port, "the GCS emulator")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def gcs(emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test's environment points at the GCS emulator, whose bucket BUCKET exists."""
    from raysweep.data import store

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    # gcsfs asks Google's control API for each bucket's layout and logs a warning when it cannot
    logging.getLogger("gcsfs").setLevel(logging.ERROR)
    store.forget_clients()
    fs = store.filesystem("gs")
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    yield
    store.forget_clients()
