"""Credentials never logged: URL passwords, secret query parameters and secret environment values are
masked in text, and every write through the tracker's MLflow client is redacted (a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysweep.core.redact import MASK, RedactingClient, is_secret_name, redact, redact_text, redact_url


@pytest.mark.parametrize(("name", "secret"), [
    ("MLFLOW_TRACKING_PASSWORD", True), ("MLFLOW_TRACKING_TOKEN", True), ("AWS_SECRET_ACCESS_KEY", True),
    ("AWS_SESSION_TOKEN", True), ("HF_TOKEN", True), ("GITHUB_TOKEN", True), ("X_API_KEY", True),
    ("access_key", True), ("password", True), ("sig", True), ("DATABASE_URL", True),
    ("TOKENIZERS_PARALLELISM", False), ("KEYBOARD", False), ("PWD", False), ("HOME", False),
    ("MLFLOW_TRACKING_USERNAME", False), ("search.storage", False), ("monkey", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(("url", "clean"), [
    ("postgresql://optuna:pg-pass@db.internal:5432/studies", "postgresql://optuna:***@db.internal:5432/studies"),
    ("postgresql+psycopg://u:p%40ss@h/db?sslmode=require", "postgresql+psycopg://u:***@h/db?sslmode=require"),
    ("http://user:s3cret@127.0.0.1:5000", "http://user:***@127.0.0.1:5000"),
    ("https://host/api?token=abc123&x=1", "https://host/api?token=***&x=1"),
    ("s3://b/k?X-Amz-Signature=f00&X-Amz-Credential=AKIA", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("mysql://root:p@ss/word@h/db", "mysql://root:***@h/db"),  # unencoded '@' and '/' in the password
    ("http://user:pa/ss@host/x", "http://user:***@host/x"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),  # nothing to hide: unchanged
    ("http://host/x?email=a@b.c", "http://host/x?email=a@b.c"),
    ("postgresql://optuna@h/db", "postgresql://optuna@h/db"),  # a user name is not a secret
])
def test_redact_url(url: str, clean: str) -> None:
    assert redact_url(url) == clean


def test_redact_text_masks_urls_assignments_and_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-example")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # not a secret: "false" stays readable
    text = ("tracking at http://u:hunter22@h:5000, dsn host=db password=hunter23 user=x; "
            "key wJalrXUtnFEMI-example in a message; false stays; --set KEY=VALUE stays")
    out = redact_text(text)
    for secret in ("hunter22", "hunter23", "wJalrXUtnFEMI-example"):
        assert secret not in out
    assert "http://u:***@h:5000" in out and "password=***" in out and "false stays" in out
    assert "--set KEY=VALUE" in out
    # short values are not hunted through text (masking every "1" would protect nothing)
    assert redact_text("a 1 b", secrets=["1"]) == "a 1 b"
    assert redact({"a": ["x http://u:pw12@h"], "b": 3}, secrets=[]) == {"a": [f"x http://u:{MASK}@h"], "b": 3}


def test_every_write_through_the_client_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-0123456789")
    raw = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    client = RedactingClient(raw)
    exp = client.create_experiment("e")  # not a write we redact: passes through
    run = client.create_run(exp, run_name="r", tags={"where": "postgresql://u:pg-secret-1@h/db"})
    rid = run.info.run_id
    client.log_batch(rid, params=[Param("search.storage", "postgresql://u:pg-secret-2@h/db"),
                                  Param("note", "token tok-0123456789 here"), Param("lr", "0.4")],
                     tags=[RunTag("t", "http://a:url-secret-3@h")])
    client.log_param(rid, "p", "x?password=qs-secret-4")
    client.set_tag(rid, "s", "tok-0123456789")
    client.log_dict(rid, {"cells": [{"uri": "http://a:dict-secret-5@h"}]}, "summary.json")
    client.log_text(rid, "text http://a:text-secret-6@h", "notes.txt")
    plain = tmp_path / "summary.txt"
    plain.write_text("storage postgresql://u:file-secret-7@h/db\n")
    client.log_artifact(rid, str(plain))
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    client.log_artifact(rid, str(png))

    got = raw.get_run(rid).data
    written = [*got.params.values(), *got.tags.values()]
    root = Path(raw.download_artifacts(rid, "", str(tmp_path / "dl")))
    written += [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
    blob = "\n".join(written)
    for i, secret in enumerate(["pg-secret-1", "pg-secret-2", "url-secret-3", "qs-secret-4", "dict-secret-5",
                                "text-secret-6", "file-secret-7", "tok-0123456789"], 1):
        assert secret not in blob, (i, secret)
    assert got.params["search.storage"] == "postgresql://u:***@h/db" and got.params["lr"] == "0.4"
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "plot.png", "summary.json", "summary.txt"]
    assert (root / "plot.png").read_bytes() == png.read_bytes()  # binary artifacts go as they are


def test_the_tracker_logs_spec_params_redacted(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from raysweep.config import spec_from_dict
    from raysweep.tracking import SweepTracker

    spec = spec_from_dict({
        "name": "s", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1],
        "search": {"storage": "postgresql+psycopg://optuna:study-pw-1@db/optuna"},
        "tracking": {"uri": "http://me:track-pw-2@127.0.0.1:5000", "experiment": "e"},
    })
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = SweepTracker(uri, "e", journal_dir=tmp_path / "journal")
    parent = tracker.start_sweep(spec, source="space.yaml", n_cells=1, study="st")
    assert tracker.close(60) is None  # everything sent
    params = MlflowClient(tracking_uri=uri).get_run(tracker.resolve(parent)).data.params
    journal = (tmp_path / "journal" / "tracking-journal.jsonl").read_text()
    assert "-pw-" not in journal  # redacted before it reaches the disk
    assert params["search.storage"] == "postgresql+psycopg://optuna:***@db/optuna"
    assert params["tracking.uri"] == "http://me:***@127.0.0.1:5000"
    assert not any("-pw-" in v for v in params.values())


def test_errors_and_tracebacks_printed_by_the_cli_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.cli import _redacting_excepthook, one_line

    assert one_line("bad\nstore postgresql://u:cli-pw-1@h/db") == "bad store postgresql://u:***@h/db"
    try:
        raise RuntimeError("lost http://u:hook-pw-2@h:5000")
    except RuntimeError as err:
        _redacting_excepthook(RuntimeError, err, err.__traceback__)
    printed = capsys.readouterr().err
    assert "Traceback" in printed and "http://u:***@h:5000" in printed  # the bug still shows, the secret not
    assert "hook-pw-2" not in printed
