"""The TCP sockets a process tree listens on, read from /proc (Linux; psutil is not a dependency):
`/proc/net/tcp` and `/proc/net/tcp6` give each listening socket's address and inode, and
`/proc/PID/fd` links name the inodes each process holds."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


@dataclass(frozen=True, order=True)
class Listener:
    host: str
    port: int
    pid: int
    process: str  # /proc/PID/comm: gcs_server, raylet, ray::IDLE, ...

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1, as a dual-stack socket bound to 127.0.0.1 shows
        return ip.is_loopback


def tree(root: int) -> set[int]:
    """root and all its descendants, by parent pid from /proc/PID/stat."""
    parents: dict[int, int] = {}
    for p in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(p.name)] = int((p / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def parse_address(field: str, v6: bool) -> tuple[str, int]:
    """`0100007F:1F90` (tcp) or the 32-hex-digit tcp6 form: the kernel writes each 32-bit word in
    host byte order (little-endian here)."""
    hexip, hexport = field.split(":")
    raw = bytes.fromhex(hexip)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, words), int(hexport, 16)


def listening(root: int) -> list[Listener]:
    """Every TCP socket in LISTEN state held by root or a descendant."""
    owner = {inode: pid for pid in tree(root) for inode in socket_inodes(pid)}
    out = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != _LISTEN or int(fields[9]) not in owner:
                continue
            pid = owner[int(fields[9])]
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                name = "?"
            out.append(Listener(*parse_address(fields[1], v6), pid, name))
    return sorted(out)
