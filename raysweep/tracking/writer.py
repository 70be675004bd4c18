"""Replays a sweep's tracking journal into MLflow: in order, idempotently, retrying while it is down.

One `JournalWriter` thread per sweep drains the journal (`raysweep.tracking.journal`) in the
background, so the Ray Tune callback that appends to it never waits on the network. The same
replay, run in the foreground, is `raysweep upload` for a journal a sweep could not send.

Idempotency, entry by entry (an entry written to MLflow but not acknowledged before a crash is
replayed once more):
  create_run     the run carries its local id as tag `raysweep.journal_key`; the replay looks the
                 key up before creating, and after creating deletes any twin a retried HTTP POST
                 made (MLflow's client retries POSTs), keeping the smallest run id.
  log_batch      metrics carry their own step and timestamp from the journal, so a replay writes
                 the same (key, value, timestamp, step) row, which MLflow's SQL store keeps once;
                 params are written with the same value; tags overwrite. MLflow's `log_batch`
                 splits a batch to its own limits.
  log_dict, log_artifact, set_terminated   overwrite with the same content.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import OperationalError

from raysweep.core.records import Tag
from raysweep.core.redact import RedactingClient, quiet_mlflow_urls
from raysweep.tracking.journal import Journal, display_uri

KEY_TAG: Final = Tag.JOURNAL_KEY
# MLflow error codes that say the request itself is wrong: sending it again cannot help
_REJECTED: Final = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "MALFORMED_REQUEST",
                              "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"})


def mlflow_http_defaults() -> None:
    """MLflow client settings for a process that journals its writes (the user's environment wins).

    MLflow's HTTP client retries a refused connection 7 times with exponential backoff, about four
    minutes, inside one call: the writer would notice a server that came back only after a sleep
    of up to a minute, and a bad URI would take minutes to report. The writer retries on its own
    (forever, backoff capped at 5 s), so one call retries twice (about 6 s) and then fails.
    And MLflow prints a "View run ... at" line per ended run on an http store; from the writer
    thread that lands amid the sweep's progress lines, and `raysweep upload` says what it sent.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    quiet_mlflow_urls()


def is_transient(err: BaseException) -> bool:
    """A store that is down, restarting or busy (retry), as opposed to a request it refuses."""
    if isinstance(err, MlflowException):
        return err.error_code not in _REJECTED
    return isinstance(err, (OSError, OperationalError))  # requests' errors are OSErrors


class Replayer:
    """Writes single journal entries into one MLflow store."""

    def __init__(self, uri: str, journal: Journal) -> None:
        self.uri = uri
        self.journal = journal
        mlflow_http_defaults()
        # The journal's entries were redacted when appended; artifacts (files) are redacted here, on
        # their way into MLflow, as are entries an older journal may hold.
        self.client = RedactingClient(MlflowClient(tracking_uri=uri))
        self._experiments: dict[str, str] = {}

    def apply(self, entry: dict[str, Any]) -> tuple[str, str] | None:
        """Write one entry; returns (local id, MLflow id) for a created run."""
        op = entry["op"]
        if op == "create_run":
            return entry["local"], self._create_run(entry)
        run = self._run(entry["run"])
        if op == "log_batch":
            self.client.log_batch(
                run,
                metrics=[Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in entry.get("metrics", ())],
                params=[Param(k, v) for k, v in entry.get("params", ())],
                tags=[RunTag(k, v) for k, v in entry.get("tags", ())],
            )
        elif op == "log_dict":
            self.client.log_dict(run, entry["data"], entry["path"])
        elif op == "log_artifact":
            self.client.log_artifact(run, str(self.journal.file_path(entry["file"])), entry.get("artifact_path"))
        elif op == "set_terminated":
            self.client.set_terminated(run, entry["status"], end_time=entry.get("end_time"))
        else:
            raise AssertionError(f"unknown journal op {op!r} (seq {entry['seq']})")
        return None

    def _run(self, run_id: str) -> str:
        mlflow_id = self.journal.resolve(run_id)
        # journal order puts a run's creation before anything logged to it, so it is acknowledged
        assert mlflow_id is not None, f"run {run_id} used before it was created"
        return mlflow_id

    def _experiment(self, name: str) -> str:
        if name not in self._experiments:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                try:
                    self._experiments[name] = self.client.create_experiment(
                        name, tags={Tag.EXPERIMENT_KIND: Tag.EXPERIMENT_KIND_TRAINING})
                except MlflowException as err:  # made by someone else in between (or by a retried POST)
                    if err.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    return self._experiment(name)
            else:
                self._experiments[name] = exp.experiment_id
        return self._experiments[name]

    def _create_run(self, entry: dict[str, Any]) -> str:
        exp = self._experiment(entry["experiment"])
        key = entry["local"]
        found = self._runs_with_key(exp, key)
        if not found:
            tags = dict(entry.get("tags", {}))
            tags[KEY_TAG] = key
            if entry.get("parent"):
                tags[Tag.PARENT] = self._run(entry["parent"])
            self.client.create_run(exp, start_time=entry.get("start_time"), tags=tags, run_name=entry.get("run_name"))
            found = self._runs_with_key(exp, key)
            assert found, f"run {key} was created but cannot be found"
        keep, *twins = sorted(found)
        for twin in twins:
            self.client.delete_run(twin)
        return keep

    def _runs_with_key(self, exp: str, key: str) -> list[str]:
        runs = self.client.search_runs([exp], filter_string=f"tags.`{KEY_TAG}` = '{key}'",
                                       run_view_type=ViewType.ACTIVE_ONLY, max_results=100)
        return [r.info.run_id for r in runs]


@dataclass(frozen=True)
class Backlog:
    """What a writer could not send before it gave up."""

    uri: str
    unsent: int  # journal entries not in MLflow
    runs_pending: int  # runs among them not even created
    error: str  # the last error the store gave
    folder: str  # the journal's folder: `raysweep upload FOLDER` sends it later


class JournalWriter:
    """The single background thread that sends a journal to MLflow in order.

    `notify()` after every append; `close(timeout)` waits at most `timeout` seconds for the journal
    to drain and returns None when all is sent, else a `Backlog` (the lines stay in the journal).
    """

    def __init__(self, journal: Journal, uri: str, *, retry_min_s: float = 0.5, retry_max_s: float = 5.0,
                 slow_s: float = 10.0, warn: Callable[[str], None] | None = None) -> None:
        self.journal = journal
        self.uri = uri
        self.replayer = Replayer(uri, journal)
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.slow_s = slow_s  # a request that takes longer counts as an outage (see _send)
        self.warn = warn
        self.last_error = ""
        self.failed: BaseException | None = None  # a bug of ours, not a store outage: the writer stops
        self.outages = 0  # times the store stopped answering
        self.caught_up = 0  # entries that waited out an outage: sent once the store answered again
        self._down = False
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="raysweep-tracking-writer", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def close(self, timeout: float) -> Backlog | None:
        """Wait up to `timeout` s for everything appended so far to reach MLflow."""
        deadline = time.monotonic() + timeout
        with self._cv:
            self._cv.notify_all()
            while self.journal.unsent() and self.failed is None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.5))
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=1.0)  # a request in flight is abandoned: its entry stays unacknowledged
        if not self.journal.unsent():
            return None
        pending = sum(e["op"] == "create_run" for e in self.journal.pending())
        error = f"{type(self.failed).__name__}: {self.failed}" if self.failed else self.last_error or "no answer"
        return Backlog(self.uri, self.journal.unsent(), pending, error, str(self.journal.folder))

    def _loop(self) -> None:
        try:
            while True:
                with self._cv:
                    while self.journal.head() is None and not self._stop:
                        self._cv.wait()
                    if self._stop:
                        return
                entry = self.journal.head()
                if entry is None or not self._send(entry):
                    continue
                with self._cv:
                    self._cv.notify_all()  # close() waits on progress
        except BaseException as err:  # noqa: BLE001 - a bug of ours: stop sending, report it at close
            self.failed = err
            with self._cv:
                self._cv.notify_all()

    def _send(self, entry: dict[str, Any]) -> bool:
        """Write one entry, retrying with backoff while the store is down; False when told to stop."""
        wait = self.retry_min_s
        while True:
            # MLflow's HTTP client retries a refused connection itself for minutes: a request that
            # hangs this long is an outage too, and the user hears of it now, not when it gives up
            slow = threading.Timer(self.slow_s, self._went_down, args=(f"no answer within {self.slow_s:g} s",))
            slow.daemon = True
            slow.start()
            try:
                run = self.replayer.apply(entry)
                break
            except Exception as err:
                if not is_transient(err):
                    raise
                self.last_error = _one_line(err)
                self._went_down(self.last_error)
                with self._cv:
                    if not self._stop:
                        self._cv.wait(wait)
                    if self._stop:
                        return False
                wait = min(wait * 2, self.retry_max_s)
            finally:
                slow.cancel()
        with self._cv:
            back = self._down
            self._down = False
        if back:  # the first write after an outage: everything still queued waited it out
            self.caught_up += self.journal.unsent()
            if self.warn:
                self.warn(f"raysweep: MLflow at {display_uri(self.uri)} answers again; sending the "
                          f"{self.journal.unsent()} tracking records that waited")
        self.journal.acknowledge(entry["seq"], run)
        return True

    def _went_down(self, why: str) -> None:
        with self._cv:
            if self._down:
                return
            self._down = True
            self.outages += 1
            self.last_error = why
        if self.warn:
            self.warn(f"raysweep: MLflow at {display_uri(self.uri)} is not answering ({why[:160]}); "
                      f"training goes on, tracking records wait in {self.journal.path}")


def _one_line(err: BaseException) -> str:
    """The gist of an error: the OS's words when a connection failed, else its first line."""
    text = str(err).strip()
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return f"{errno.group(1).strip()} ({type(err).__name__})"
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def upload(folder: Any, uri: str) -> tuple[int, int]:
    """Send what a journal holds that MLflow lacks, in the foreground. Returns (sent, left).
    Running it again sends nothing twice: acknowledged entries are skipped, the rest replay
    idempotently."""
    journal = Journal(folder, uri)
    replayer = Replayer(uri, journal)
    sent = 0
    try:
        while (entry := journal.head()) is not None:
            journal.acknowledge(entry["seq"], replayer.apply(entry))
            sent += 1
    finally:
        journal.close()
    return sent, journal.unsent()
