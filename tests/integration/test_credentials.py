"""Credentials never logged, end to end: a real sweep against a real `mlflow server`, with a password
in the tracking URL, a password in the study storage URL and secrets in the environment. None of
them may reach an MLflow param, tag, run name or artifact, nor the command's stdout or stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raysweep.core.records import Tag, TrialStatus

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

URL_SECRET = "url-pw-7f3a9c"  # in the tracking URL, as basic auth
STORAGE_SECRET = "raysweep-test-pw"  # the real password of the test PostgreSQL, in search.storage
ENV_SECRET = "env-pw-b06c55"  # $MLFLOW_TRACKING_PASSWORD, which MLflow sends as basic auth
AWS_SECRET = "aws-sk-9e1f0d"  # $AWS_SECRET_ACCESS_KEY, also quoted in the sweep's description
SECRETS = (URL_SECRET, STORAGE_SECRET, ENV_SECRET, AWS_SECRET)


def test_no_secret_reaches_mlflow_or_the_console(tmp_path: Path, mlflow_server: str, postgres) -> None:  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    host = mlflow_server.removeprefix("http://")
    storage = postgres.create_db("creds")  # a real study database, reached with its password
    assert f":{STORAGE_SECRET}@" in storage
    pg_host = storage.split("@", 1)[1]
    space = tmp_path / "space.yaml"
    demo = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
    demo["tracking"]["experiment"] = "credentials"
    space.write_text(yaml.safe_dump(demo))
    sets = ["name=creds", "ladder.rungs=[nfnet_t0]", "epochs=[0.5]", "search.searcher=grid",
            "lr.base=0.4", "lr.low=0.2", "lr.high=0.4", "resources.concurrent_trials=1",
            f"tracking.uri=http://sweeper:{URL_SECRET}@{host}",
            f"search.storage={storage}",
            f"description=key {AWS_SECRET} quoted by mistake"]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env |= {"MLFLOW_TRACKING_USERNAME": "sweeper", "MLFLOW_TRACKING_PASSWORD": ENV_SECRET,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "raysweep", "run", str(space), "--results", str(tmp_path / "res")]
    for item in sets:
        argv += ["--set", item]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900, check=False)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]
    assert f"tracking at http://sweeper:***@{host}" in proc.stdout
    assert f"open http://sweeper:***@{host}/#/experiments/" in proc.stdout

    client = MlflowClient(tracking_uri=mlflow_server)  # the server takes no auth: read back everything
    exp = client.get_experiment_by_name("credentials")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_TRIAL]
    assert len(runs) == 3 and len(trials) == 2, [r.info.run_name for r in runs]  # parent + one per LR
    assert {r.data.tags.get(Tag.STATUS) for r in trials} == {TrialStatus.OK.value}
    written = []
    for run in runs:
        written += [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
        root = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl" / run.info.run_id)))
        written += [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
    parent = next(r for r in runs if r.data.tags.get(Tag.KIND) == Tag.KIND_SWEEP)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "summary.txt", "trials.csv"} <= artifacts, artifacts
    # redacted, not dropped: the record still says where the study and the tracking store are
    assert parent.data.params["search.storage"] == f"postgresql://raysweep:***@{pg_host}"
    assert parent.data.params["tracking.uri"] == f"http://sweeper:***@{host}"
    assert parent.data.params["description"] == "key *** quoted by mistake"
    assert trials[0].data.params["search.storage"].startswith("postgresql://raysweep:***@")
    blob = "\n".join(written)
    for secret in SECRETS:
        assert secret not in blob, secret
        assert secret not in console, (secret, console[-3000:])
