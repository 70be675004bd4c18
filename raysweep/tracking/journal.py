"""The durable local journal of a sweep's MLflow writes: what must reach MLflow, in order.

Every MLflow write of a sweep (create a run, log a batch, log a dict or a file, end a run) is first
appended here as one JSON line and fsync'd, then replayed into MLflow by one background writer
(`raysweep.tracking.writer`). A tracking server that goes away therefore never blocks training and
never loses a record: the lines wait in the journal until it returns, or until `raysweep upload`.

Files, in the sweep's results folder (`raysweep_results/<sweep>/`):
  tracking-journal.jsonl      one entry a line: {"seq": n, "op": ..., ...}; seq counts lines from 0
  tracking-journal.ack.json   per tracking store (keyed by a hash of its URI): {"done": n, "runs":
                              {local id: MLflow run id}}: entries 0..n are in that store; written
                              atomically (temp file, fsync, rename) after each entry
  tracking-journal-files/     copies of the files logged as artifacts (the originals may be temporary)

Pure file I/O: no MLflow, no Ray. An entry written to MLflow but not yet acknowledged when the
process dies is replayed again; the writer makes every replay idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

JOURNAL: Final = "tracking-journal.jsonl"
ACK: Final = "tracking-journal.ack.json"
FILES: Final = "tracking-journal-files"
LOCAL_PREFIX: Final = "local-"  # local run ids: never a valid MLflow run id (those are 32 hex digits)


def new_local_id() -> str:
    """A run id the caller can use at once; the writer maps it to the MLflow run id once created.
    It is also the run's client key (tag raysweep.journal_key), so a replay finds the run it made."""
    return f"{LOCAL_PREFIX}{uuid.uuid4().hex}"


def is_local(run_id: str) -> bool:
    return run_id.startswith(LOCAL_PREFIX)


def display_uri(uri: str) -> str:
    """A URI fit to print or store: any user:password@ is masked."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def store_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


@dataclass
class Ack:
    """How far the journal has reached MLflow, and the MLflow ids of the runs it created."""

    done: int = -1  # the highest seq written to MLflow; every entry before it is written too
    runs: dict[str, str] = field(default_factory=dict)
    uri: str = ""  # the store, for people reading the file (credentials masked)


class Journal:
    """Append-only, fsync'd, thread-safe. One process appends (the sweep's driver) and one thread
    acknowledges (the writer); `raysweep upload` opens it when no sweep is running.

    Acknowledgements are kept per store `uri`, so an upload to another (say a fresh) server sends
    the whole journal there. `catch_up=False` (a new sweep session): a store this journal has never
    written to starts at the journal's end when some other store has been written, so a session does
    not copy earlier sessions' records into a store it switched to; `raysweep upload` does that.
    """

    def __init__(self, folder: Path, uri: str, *, catch_up: bool = True) -> None:
        self.folder = Path(folder)
        self.uri = uri
        self._store = store_key(uri)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JOURNAL
        self.ack_path = self.folder / ACK
        self._lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._next = self._repair()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the journal's lifetime
        self._stores = self._read_acks()
        if self._store in self._stores:
            self.ack = self._stores[self._store]
        elif self._stores and not catch_up:
            self.ack = Ack(self._next - 1, uri=display_uri(uri))
        else:
            self.ack = Ack(uri=display_uri(uri))
        # what MLflow lacks, in order: read once here, then fed by append(); the writer never rereads the file
        self._pending: deque[dict[str, Any]] = deque(self.entries(self.ack.done))

    @property
    def next_seq(self) -> int:
        return self._next

    def append(self, op: str, **fields: Any) -> dict[str, Any]:
        """Write one entry durably and return it (with its seq). Returns only once it is on disk."""
        with self._lock:
            entry = {"seq": self._next, "op": op, **fields}
            self._file.write(json.dumps(entry, allow_nan=True) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._next += 1
            self._pending.append(entry)
            return entry

    def keep_file(self, path: Path) -> str:
        """Copy a file the journal will log as an artifact; returns its name under FILES. The copy is
        fsync'd before the entry that names it is appended."""
        folder = self.folder / FILES / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        target = folder / Path(path).name
        shutil.copyfile(path, target)
        with open(target, "rb") as f:
            os.fsync(f.fileno())
        return str(target.relative_to(self.folder / FILES))

    def file_path(self, name: str) -> Path:
        return self.folder / FILES / name

    def entries(self, after: int = -1) -> Iterator[dict[str, Any]]:
        """The entries with seq > `after`, in order."""
        with open(self.path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i > after:
                    yield json.loads(line)

    def unsent(self) -> int:
        return self._next - 1 - self.ack.done

    def head(self) -> dict[str, Any] | None:
        """The oldest entry not yet in MLflow."""
        with self._lock:
            return self._pending[0] if self._pending else None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._pending)

    def acknowledge(self, seq: int, run: tuple[str, str] | None = None) -> None:
        """Entry `seq` (and every one before it) is in MLflow; `run` maps a local id to its MLflow id."""
        with self._ack_lock:
            assert seq == self.ack.done + 1, f"acknowledged out of order: {seq} after {self.ack.done}"
            runs = dict(self.ack.runs)
            if run is not None:
                runs[run[0]] = run[1]
            self._stores[self._store] = Ack(seq, runs, display_uri(self.uri))
            tmp = self.ack_path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({k: {"uri": a.uri, "done": a.done, "runs": a.runs} for k, a in self._stores.items()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.ack_path)
            self.ack = self._stores[self._store]
            with self._lock:
                head = self._pending.popleft()
            assert head["seq"] == seq

    def resolve(self, run_id: str) -> str | None:
        """The MLflow id of `run_id`: itself when it is an MLflow id, None while not yet created."""
        return self.ack.runs.get(run_id) if is_local(run_id) else run_id

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _read_acks(self) -> dict[str, Ack]:
        if not self.ack_path.exists():
            return {}
        d = json.loads(self.ack_path.read_text(encoding="utf-8"))
        return {k: Ack(int(a["done"]), dict(a["runs"]), a.get("uri", "")) for k, a in d.items()}

    def _repair(self) -> int:
        """Count the complete entries; cut a torn last line (a process killed mid-write: that entry
        was never returned to its caller, so nothing promised is lost)."""
        if not self.path.exists():
            return 0
        good = 0
        n = 0
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    break
                good += len(line)
                n += 1
        if good != self.path.stat().st_size:
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return n
