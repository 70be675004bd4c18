"""The tracking journal replayed into a real SQLite MLflow store: order, idempotency, crashes, outages.

No mocks: every write goes to an MLflow SQLite store in tmp_path, and the "crash" cases stop a
replay exactly where a killed process would have stopped (an entry written, its ack not).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient

from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.errors import SpecError
from raysweep.core.records import M, Tag
from raysweep.tracking import SweepTracker
from raysweep.tracking.journal import ACK, JOURNAL, Journal, is_local
from raysweep.tracking.writer import KEY_TAG, JournalWriter, Replayer, is_transient, upload

SPEC = {"name": "jtest", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [0.5],
        "lr": {"base": 0.1, "factor": 2, "low": 0.1, "high": 0.2}, "data": {"dataset": "mnist5k"},
        "search": {"searcher": "grid"}, "tracking": {"experiment": "jtest"}}


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def record_sweep(tracker: SweepTracker, tmp_path: Path, *, trials: int = 2, reports: int = 3) -> dict[str, list]:
    """Drive the tracker the way the Tune callback and the runner do; returns what each trial reported."""
    spec = spec_from_dict(SPEC)
    parent = tracker.start_sweep(spec, source="test", n_cells=1, study="jtest-study")
    reported: dict[str, list] = {}
    for t in range(trials):
        cfg = TrialConfig(spec=spec, model="nfnet_t0", epochs=0.5, lr=0.1 * (t + 1), reason="test")
        run = tracker.start_trial(parent, cfg, trial_id=f"trial{t}")
        steps = []
        for r in range(reports):
            curve = [(r * 4 + i, 2.0 - 0.1 * (r * 4 + i), 0.1) for i in range(4)]
            steps += [c[0] for c in curve]
            tracker.log_result(run, {"curve": curve, "step": r * 4 + 3, M.VAL_LOSS: 1.0 / (r + 1), M.EPOCH: r,
                                     "model_params": 1234, "flops_per_example": 5.0, "status": "running"})
        tracker.end_trial(run, status="ok", metrics={M.TRIAL_WALL_S: 1.5})
        reported[run] = steps
    art = tmp_path / "gone-after.txt"
    art.write_text("summary\n")
    tracker.set_tags(next(iter(reported)), {"raysweep.best_in_cell": "true"})
    tracker.end_sweep(parent, summary_rows=[{"cell": "nfnet_t0@0.5"}], metrics={"sweep/trials": trials}, tags={},
                      artifacts=[art])
    art.unlink()  # the runner's artifacts live in a temporary folder: the journal kept a copy
    reported["parent"] = [parent]
    return reported


def check_record(uri: str, *, trials: int = 2, reports: int = 3) -> None:
    """Exactly one parent and `trials` children, each history complete with no (key, step) twice."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("jtest")
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    parents = [r for r in runs if r.data.tags.get(Tag.KIND) == "sweep"]
    kids = [r for r in runs if r.data.tags.get(Tag.KIND) == "trial"]
    assert len(parents) == 1 and len(kids) == trials
    assert parents[0].info.status == "FINISHED"
    assert "summary.json" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "gone-after.txt" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    for kid in kids:
        assert kid.data.tags[Tag.PARENT] == parents[0].info.run_id
        assert kid.info.status == "FINISHED" and kid.data.tags[Tag.STATUS] == "ok"
        assert kid.data.params["model_params"] == "1234" and kid.data.params["lr"] in ("0.1", "0.2")
        hist = client.get_metric_history(kid.info.run_id, M.TRAIN_LOSS)
        assert sorted(h.step for h in hist) == list(range(4 * reports))  # no gap, no step twice
        val = client.get_metric_history(kid.info.run_id, M.VAL_LOSS)
        assert [h.step for h in val] == [r * 4 + 3 for r in range(reports)]


def test_tracker_writes_through_the_journal_what_it_would_have_written(tmp_path: Path) -> None:
    uri = sqlite(tmp_path / "mlflow.db")
    tracker = SweepTracker(uri, "jtest", journal_dir=tmp_path / "sweep")
    reported = record_sweep(tracker, tmp_path)
    parent = reported["parent"][0]
    assert is_local(parent)  # callers get an id at once; the MLflow id follows
    assert tracker.close(60) is None
    assert not is_local(tracker.resolve(parent))
    check_record(uri)
    lines = (tmp_path / "sweep" / JOURNAL).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(len(lines)))
    ack = json.loads((tmp_path / "sweep" / ACK).read_text())
    assert [a["done"] for a in ack.values()] == [len(lines) - 1]


def test_metrics_keep_the_step_and_timestamp_they_were_reported_with(tmp_path: Path) -> None:
    uri = sqlite(tmp_path / "mlflow.db")
    tracker = SweepTracker(uri, "jtest", journal_dir=tmp_path / "sweep")
    record_sweep(tracker, tmp_path)
    assert tracker.close(60) is None
    journal_ts = {(e["run"], m[0], m[3]): m[2] for e in map(json.loads, (tmp_path / "sweep" / JOURNAL).open())
                  if e["op"] == "log_batch" for m in e["metrics"]}
    client = MlflowClient(uri)
    seen = 0
    for (run, key, step), ts in journal_ts.items():
        hist = [h for h in client.get_metric_history(tracker.resolve(run), key) if h.step == step]
        assert [h.timestamp for h in hist] == [ts]
        seen += 1
    assert seen > 20


def test_upload_twice_writes_nothing_twice_and_a_fresh_store_gets_everything(tmp_path: Path) -> None:
    uri = sqlite(tmp_path / "first.db")
    tracker = SweepTracker(uri, "jtest", journal_dir=tmp_path / "sweep")
    record_sweep(tracker, tmp_path)
    assert tracker.close(60) is None
    assert upload(tmp_path / "sweep", uri) == (0, 0)  # all acknowledged: nothing sent again
    fresh = sqlite(tmp_path / "fresh.db")
    n = len((tmp_path / "sweep" / JOURNAL).read_text().splitlines())
    assert upload(tmp_path / "sweep", fresh) == (n, 0)
    assert upload(tmp_path / "sweep", fresh) == (0, 0)
    check_record(uri)
    check_record(fresh)


@pytest.mark.parametrize("crash_after", [0, 2, 5, 8, -1])
def test_a_crash_between_write_and_ack_writes_nothing_twice(tmp_path: Path, crash_after: int) -> None:
    """Entries up to `crash_after` reach MLflow; the last of them is not acknowledged (the process
    died in between). The next upload replays it: still one run each, no (key, step) twice."""
    journal_uri = sqlite(tmp_path / "unused.db")
    tracker = SweepTracker(journal_uri, "jtest", journal_dir=tmp_path / "sweep")
    tracker.writer.close(0)  # no background writer: this test plays it by hand
    record_sweep(tracker, tmp_path)
    tracker.journal.close()
    uri = sqlite(tmp_path / "mlflow.db")
    journal = Journal(tmp_path / "sweep", uri)
    entries = journal.pending()
    last = len(entries) - 1 if crash_after < 0 else crash_after
    replayer = Replayer(uri, journal)
    for entry in entries[:last]:
        journal.acknowledge(entry["seq"], replayer.apply(entry))
    replayer.apply(entries[last])  # written, then the "crash": no acknowledgement
    journal.close()
    assert upload(tmp_path / "sweep", uri) == (len(entries) - last, 0)
    check_record(uri)


def test_a_twin_run_from_a_retried_post_is_removed(tmp_path: Path) -> None:
    """MLflow's HTTP client retries POSTs: a create_run answered too late can make two runs with the
    same journal key. The replay keeps one (the smallest id) and deletes the other."""
    tracker = SweepTracker(sqlite(tmp_path / "unused.db"), "jtest", journal_dir=tmp_path / "sweep")
    tracker.writer.close(0)
    record_sweep(tracker, tmp_path, trials=1)
    tracker.journal.close()
    uri = sqlite(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("jtest")
    first = next(Journal(tmp_path / "sweep", uri).entries())
    assert first["op"] == "create_run"
    for _ in range(2):
        client.create_run(exp, tags={KEY_TAG: first["local"], **first["tags"]}, run_name=first["run_name"])
    upload(tmp_path / "sweep", uri)
    check_record(uri, trials=1)
    deleted = client.search_runs([exp], filter_string=f"tags.`{KEY_TAG}` = '{first['local']}'",
                                 run_view_type=ViewType.DELETED_ONLY)
    assert len(deleted) == 1


def test_a_torn_last_line_is_cut_and_the_rest_kept(tmp_path: Path) -> None:
    uri = sqlite(tmp_path / "mlflow.db")
    journal = Journal(tmp_path, uri)
    journal.append("log_batch", run="local-x", metrics=[["a", 1.0, 1, 0]], params=[], tags=[])
    journal.close()
    with open(tmp_path / JOURNAL, "a") as f:
        f.write('{"seq": 1, "op": "log_ba')  # the process died mid-write
    journal = Journal(tmp_path, uri)
    assert journal.next_seq == 1 and [e["seq"] for e in journal.pending()] == [0]
    assert journal.append("log_batch", run="local-x", metrics=[], params=[], tags=[])["seq"] == 1
    journal.close()
    assert [json.loads(line)["seq"] for line in (tmp_path / JOURNAL).read_text().splitlines()] == [0, 1]


def test_acknowledgements_come_in_journal_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path, sqlite(tmp_path / "m.db"))
    for _ in range(2):
        journal.append("log_batch", run="local-x", metrics=[], params=[], tags=[])
    with pytest.raises(AssertionError, match="out of order"):
        journal.acknowledge(1)
    journal.close()


def test_a_new_session_does_not_copy_earlier_sessions_into_a_store_it_switched_to(tmp_path: Path) -> None:
    first = SweepTracker(sqlite(tmp_path / "a.db"), "jtest", journal_dir=tmp_path / "sweep")
    record_sweep(first, tmp_path, trials=1)
    assert first.close(60) is None
    second = SweepTracker(sqlite(tmp_path / "b.db"), "jtest", journal_dir=tmp_path / "sweep")
    record_sweep(second, tmp_path, trials=1)
    assert second.close(60) is None
    check_record(sqlite(tmp_path / "b.db"), trials=1)  # one sweep, not two


def test_the_writer_retries_while_the_store_is_away_and_sends_everything_when_it_returns(tmp_path: Path) -> None:
    """A SQLite store whose folder is missing refuses every write (OperationalError); once the folder
    is back the same writer thread goes on, in order, with nothing lost or written twice."""
    uri = sqlite(tmp_path / "mlflow.db")
    tracker = SweepTracker(uri, "jtest", journal_dir=tmp_path / "sweep")  # experiment made while up
    shutil.move(tmp_path / "mlflow.db", tmp_path / "away.db")
    (tmp_path / "mlflow.db").mkdir()  # a folder where the database was: sqlite cannot open it
    lines: list[str] = []
    tracker.writer.warn = lines.append
    record_sweep(tracker, tmp_path)
    assert tracker.writer.close(2.0) is not None  # still down: a backlog, not an exception
    assert tracker.journal.unsent() > 0 and tracker.writer.outages == 1
    assert any("not answering" in line for line in lines)
    tracker.journal.close()
    (tmp_path / "mlflow.db").rmdir()
    shutil.move(tmp_path / "away.db", tmp_path / "mlflow.db")
    writer = JournalWriter(Journal(tmp_path / "sweep", uri), uri)
    assert writer.close(60) is None
    check_record(uri)


def test_transient_and_refused_errors_are_told_apart() -> None:
    assert is_transient(MlflowException("API request to http://x failed with exception ConnectionError"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(KeyError("ours"))


@pytest.mark.parametrize("value", [-1, math.inf, math.nan])
def test_flush_timeout_must_be_a_finite_number_of_seconds(value: float) -> None:
    with pytest.raises(SpecError, match="tracking.flush_timeout_s"):
        spec_from_dict({**SPEC, "tracking": {"experiment": "x", "flush_timeout_s": value}})


def test_a_pickled_tracker_copy_holds_no_thread_and_cannot_write(tmp_path: Path) -> None:
    """Ray Tune pickles its callbacks, the tracker with them, when a sweep starts."""
    import pickle

    tracker = SweepTracker(sqlite(tmp_path / "mlflow.db"), "jtest", journal_dir=tmp_path / "sweep")
    copy = pickle.loads(pickle.dumps(tracker))
    assert copy.uri == tracker.uri and copy.experiment_id == tracker.experiment_id
    with pytest.raises(AssertionError, match="cannot write"):
        copy.set_tags("local-x", {"a": "b"})
    assert tracker.close(10) is None


def test_upload_says_in_one_line_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from raysweep.cli import main

    assert main(["upload", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RESULTS/SWEEP" in err[0] and "tracking-journal.jsonl" in err[0]

    tracker = SweepTracker(sqlite(tmp_path / "unused.db"), "jtest", journal_dir=tmp_path / "sweep")
    tracker.writer.close(0)
    record_sweep(tracker, tmp_path, trials=1)
    tracker.journal.close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    capsys.readouterr()  # MLflow's log lines from making the store above
    assert main(["upload", str(tmp_path / "sweep"), "--tracking-uri", dead]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("raysweep: error: --tracking-uri: expected a reachable MLflow")
    assert "records still to send" in err[0]

    uri = sqlite(tmp_path / "mlflow.db")
    assert main(["upload", str(tmp_path / "sweep"), "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.startswith("uploaded 14 tracking records")
    assert main(["upload", str(tmp_path / "sweep"), "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.startswith("nothing to upload")
    check_record(uri, trials=1)


def test_a_refused_connection_is_told_in_the_os_words() -> None:
    from raysweep.tracking.writer import _one_line

    err = MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/runs/log-batch failed with exception "
                          "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /api (Caused by "
                          "NewConnectionError('<conn>: Failed to establish a new connection: [Errno 111] Connection "
                          "refused'))")
    assert _one_line(err) == "Connection refused (MlflowException)"
    assert _one_line(KeyError("x")) == "KeyError: 'x'"
