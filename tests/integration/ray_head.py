"""A real Ray head started with `ray start --head --block` for tests, and stopped by its process id.

Each head gets a temp folder of its own (`RAY_TMPDIR`, so its `ray_current_cluster` file and
session logs stay out of `/tmp/ray`), free ports (a head already running on the machine keeps
its own), and token auth through `RAY_AUTH_TOKEN` (no `~/.ray/auth_token` written). `--block`
keeps `ray start` in the foreground as the parent of every Ray process of the head: SIGTERM to it
stops them all; whatever is left after a grace period is killed by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayHead:
    proc: subprocess.Popen
    tmpdir: Path  # RAY_TMPDIR: Ray's temp folder is tmpdir/ray
    env: dict[str, str]  # what a client on this machine needs: RAY_TMPDIR and the auth token
    gcs_address: str
    dashboard_url: str | None
    log: Path
    pids: set[tuple[int, int]] = field(default_factory=set)  # (pid, start time) of the head's processes

    @property
    def session_logs(self) -> Path:
        return self.tmpdir / "ray" / "session_latest" / "logs"


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def _children(pid: int) -> set[tuple[int, int]]:
    """Every descendant of pid as (pid, start time), so that a recycled pid is never killed
    (psutil is not a dependency of the project)."""
    procs = {int(p.name): st for p in Path("/proc").glob("[0-9]*") if (st := _stat(int(p.name)))}
    out: set[tuple[int, int]] = set()
    frontier = {pid}
    while frontier:
        found = {(p, st[1]) for p, st in procs.items() if st[0] in frontier} - out
        out |= found
        frontier = {p for p, _ in found}
    return out


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start


def start_head(*, dashboard: bool = False, num_cpus: int = 2, timeout: float = 120,
               head_env: dict[str, str] | None = None, drop_env: tuple[str, ...] = ()) -> RayHead:
    """`head_env` is added to the head's environment (its jobs inherit it); `drop_env` is removed."""
    # AF_UNIX socket paths are limited to 107 bytes: a short folder, not pytest's tmp_path
    tmpdir = Path(tempfile.mkdtemp(prefix="rsh", dir="/tmp"))
    token = secrets.token_hex(16)
    env = {"RAY_TMPDIR": str(tmpdir), "RAY_AUTH_TOKEN": token}
    dash_port = free_port()
    cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
           "--num-cpus", str(num_cpus), "--disable-usage-stats",
           "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
           "--include-dashboard", "true" if dashboard else "false"]
    if dashboard:
        cmd += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port)]
    log = tmpdir / "head.log"
    run_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", *drop_env)}
    run_env.update(env, RAY_AUTH_MODE="token", **(head_env or {}))
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=run_env, start_new_session=True)
    address_file = tmpdir / "ray" / "ray_current_cluster"
    deadline = time.monotonic() + timeout
    head = RayHead(proc, tmpdir, env, "", f"http://127.0.0.1:{dash_port}" if dashboard else None, log)
    while not (address_file.exists() and address_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text()[-3000:]
            stop_head(head)
            raise RuntimeError(f"ray start --head did not come up: {text}")
        time.sleep(0.5)
    head.gcs_address = address_file.read_text().strip()
    if dashboard:
        import urllib.error
        import urllib.request

        while True:  # the job API answers once the dashboard is up (with 401 without the token)
            try:
                urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    text = log.read_text()[-3000:]
                    stop_head(head)
                    raise RuntimeError(f"the dashboard did not come up: {text}") from None
                time.sleep(1)
    return head


def stop_head(head: RayHead, grace: float = 30) -> None:
    """SIGTERM to `ray start --block` stops the head's processes; the rest are killed by pid."""
    pids = _children(head.proc.pid) | head.pids
    if head.proc.poll() is None:
        head.proc.send_signal(signal.SIGTERM)
        try:
            head.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            head.proc.kill()
            head.proc.wait()
    reap(pids)
    shutil.rmtree(head.tmpdir, ignore_errors=True)


def reap(pids: object, wait_s: float = 10.0) -> None:
    """Give each (pid, start time) up to `wait_s` in all to exit, then SIGKILL what is left."""
    deadline = time.monotonic() + wait_s
    for pid, start in sorted(pids):  # type: ignore[call-overload]
        while _alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
