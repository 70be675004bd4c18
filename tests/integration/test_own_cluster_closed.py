"""raysweep's own single-machine Ray cluster is closed, and stays so: it listens on loopback only,
and a client without the cluster's token is refused.

One cluster, started the way `raysweep run` starts it (`raysweep.sweep.connect.connect`, with no
Ray cluster around) in a process of its own, serves both tests. Its environment holds
`RAY_AUTH_MODE=disabled`, the variable that would open it: raysweep must override it. `HOME` is a
scratch folder, so the token Ray generates goes to `HOME/.ray/auth_token` there, not the user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.listening import Listener, listening, parse_address
from tests.integration.ray_head import _children, reap

ROOT = Path(__file__).resolve().parents[2]

# Listening sockets outside 127.0.0.0/8 that README.md explains, by process name. None today.
EXPLAINED: dict[str, str] = {}

HOLD = """
import os, sys
import ray
from raysweep.sweep.connect import connect
how = connect(log_to_driver=False).how

@ray.remote
def pid():
    return os.getpid()

ray.get(pid.remote())  # a worker process exists, listening like any other
print("READY", ray.get_runtime_context().gcs_address, ray.util.get_node_ip_address(), how, flush=True)
sys.stdin.read()  # held until the test closes stdin
ray.shutdown()
"""


@dataclass
class OwnCluster:
    proc: subprocess.Popen
    gcs_address: str
    node_ip: str
    how: str
    home: Path  # the cluster's HOME: its token is in .ray/auth_token
    tmp: Path
    stderr: Path


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[OwnCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="rsc", dir="/tmp"))  # short: AF_UNIX socket paths hold 107 bytes
    (tmp / "home").mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env.update(HOME=str(tmp / "home"), RAY_TMPDIR=str(tmp), RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT))
    stderr = tmp / "stderr.log"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env, cwd=tmp, start_new_session=True)
    pids: set[tuple[int, int]] = set()
    try:
        assert proc.stdout is not None
        watchdog = threading.Timer(180, proc.kill)  # a hang must not block the read below
        watchdog.start()
        line = proc.stdout.readline()
        watchdog.cancel()
        assert line.startswith("READY "), f"{line!r}: {stderr.read_text()[-3000:]}"
        _, gcs, ip, how = line.rstrip("\n").split(" ", 3)
        pids = _children(proc.pid)
        yield OwnCluster(proc, gcs, ip, how, tmp / "home", tmp, stderr)
    finally:
        pids |= _children(proc.pid)
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()  # ray.shutdown() stops the cluster's processes
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reap(pids)
        shutil.rmtree(tmp, ignore_errors=True)


JOIN = """
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except ConnectionError as err:
    print("REFUSED", err, flush=True)
else:
    print("JOINED", flush=True)
    ray.shutdown()
"""


def join(cluster: OwnCluster, home: Path, **env_add: str) -> subprocess.Popen:
    """`ray.init(address=<the cluster's GCS>)` from another process, as another user of the machine
    would; `.communicate()` gives its stdout and stderr. A refused client retries for about 20 s."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                                            "RAY_AUTH_TOKEN_PATH")}
    # Ray turns 127.0.0.1 in an address into the machine's routable IP, where nothing listens:
    # a client on this machine reaches the loopback-only cluster with this switch, as raysweep does
    env.update(HOME=str(home), RAY_TMPDIR=str(cluster.tmp), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **env_add)
    return subprocess.Popen([sys.executable, "-c", JOIN, cluster.gcs_address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def outcome(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_client_without_the_token_is_refused(own_cluster: OwnCluster, tmp_path: Path) -> None:
    # raysweep said it overrode the variable that would have opened the cluster
    assert "RAY_AUTH_MODE=disabled ignored" in own_cluster.stderr.read_text()
    assert (own_cluster.home / ".ray" / "auth_token").is_file()  # Ray generated the cluster's token
    # side by side, as each waits out its retries: no token anywhere (HOME is empty), and a wrong one
    without = join(own_cluster, tmp_path)
    wrong = join(own_cluster, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 32)
    for proc in (without, wrong):
        out, err = outcome(proc)
        assert out.startswith("REFUSED"), out + err[-3000:]
        assert "InvalidAuthToken" in err, err[-3000:]
    # the control: the same join with the cluster's token gets in, so the refusals were the token's
    out, err = outcome(join(own_cluster, own_cluster.home, RAY_AUTH_MODE="token"))
    assert out.startswith("JOINED"), out + err[-3000:]


@pytest.mark.slow
def test_the_cluster_listens_on_loopback_only(own_cluster: OwnCluster) -> None:
    assert own_cluster.how.startswith("a Ray cluster of its own")
    assert own_cluster.node_ip == "127.0.0.1" and own_cluster.gcs_address.startswith("127.0.0.1:")
    sockets = listening(own_cluster.proc.pid)
    print("\n".join(f"{s.host}:{s.port} {s.process} (pid {s.pid})" for s in sockets))  # pytest -s: the list
    names = {s.process for s in sockets}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), sockets  # not vacuous
    open_ = [s for s in sockets if not s.loopback and s.process not in EXPLAINED]
    assert not open_, f"listening outside 127.0.0.0/8, unexplained in README.md: {open_}"


def test_proc_net_addresses_parse() -> None:
    assert parse_address("0100007F:1F90", v6=False) == ("127.0.0.1", 8080)
    assert parse_address("00000000:0050", v6=False) == ("0.0.0.0", 80)
    assert parse_address("0000000000000000FFFF00000100007F:9C47", v6=True) == ("::ffff:127.0.0.1", 40007)
    assert parse_address("00000000000000000000000000000000:0016", v6=True) == ("::", 22)
    assert Listener("::ffff:127.0.0.1", 1, 1, "x").loopback and Listener("127.3.0.1", 1, 1, "x").loopback
    assert not Listener("::", 1, 1, "x").loopback and not Listener("0.0.0.0", 1, 1, "x").loopback
