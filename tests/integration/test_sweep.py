"""End to end on a real local Ray cluster: YAML -> Tune -> Train -> MLflow, read back with MlflowClient."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from readback import assert_best_in_cell

from raysweep.config import spec_from_dict
from raysweep.sweep.runner import run_sweep
from raysweep.tracking import read_metric
from raysweep.train.worker import PARAMS_DIGEST_FILE, STATE_FILE, param_digest

pytestmark = pytest.mark.slow

CHILD_PARAMS = {"model", "model_params", "epochs", "lr", "batch_size", "dataset", "seed", "optim.momentum",
                "optim.agc_clip", "resources.device", "lr.factor"}
CHILD_METRICS = {"train/loss", "val/loss", "val/acc", "lr", "compute/examples", "compute/flops", "compute/core_hours"}


def small_spec(**over: object) -> dict:
    d: dict = {
        "name": "itest",
        "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
        "epochs": [0.5, 1.0],
        # 0.1 and 10 train; 1000 with AGC off blows up within a step or two
        "lr": {"base": 0.1, "factor": 100, "low": 0.1, "high": 1000},
        "data": {"dataset": "mnist5k", "train_subset": 640},
        "batch_size": 64,
        "optim": {"agc_clip": 0.0},
        "resources": {"device": "cpu", "workers_per_trial": 0, "concurrent_trials": 2},
        "search": {"searcher": "grid"},
        "tracking": {"experiment": "itest"},
    }
    d.update(over)
    return d


def children(client: MlflowClient, parent_id: str) -> list:
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=1000)


def test_grid_sweep_records_parent_children_metrics_and_divergence(ray_cluster: None, tmp_path: Path) -> None:
    spec = spec_from_dict(small_spec(epochs=[0.5], lr={"base": 0.1, "factor": 100, "low": 0.1, "high": 1000}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_sweep(spec, source="test", tracking_uri=uri, results_dir=tmp_path / "results", verbose=0)

    assert out.trials == 6  # 2 models x 1 budget x 3 LRs
    client = MlflowClient(uri)
    parent = client.get_run(out.parent_run_id)
    assert parent.data.tags["raysweep.kind"] == "sweep" and parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/trials"] == 6
    runs = children(client, out.parent_run_id)
    assert len(runs) == 6
    by_lr: dict[float, list] = {}
    for run in runs:
        by_lr.setdefault(float(run.data.params["lr"]), []).append(run)
        assert CHILD_PARAMS <= set(run.data.params), CHILD_PARAMS - set(run.data.params)
        assert run.data.tags["raysweep.cell"] == f"{run.data.params['model']}@0.5"
        assert int(run.data.params["model_params"]) > 1000
        assert run.data.params["dataset"] == "mnist5k"
    for run in by_lr[0.1]:
        assert run.data.tags["raysweep.status"] == "ok"
        assert CHILD_METRICS <= set(run.data.metrics), CHILD_METRICS - set(run.data.metrics)
        m = run.data.metrics
        assert 0 < m["val/loss"] < 5 and 0 <= m["val/acc"] <= 1
        assert m["compute/examples"] == 5 * 64  # floor(0.5 * 640 / 64) steps of 64 (train_subset 640)
        assert m["compute/flops"] > 0 and m["compute/core_hours"] > 0
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [h.step for h in history] == sorted(h.step for h in history) and len(history) == 5
        assert client.get_metric_history(run.info.run_id, "lr")[-1].value < 0.1
    for run in by_lr[1000.0]:
        assert run.data.tags["raysweep.status"] == "diverged"
        assert math.isinf(read_metric(run.data.metrics["val/loss"]))
    # the summary tags the best run of each cell and the parent holds the settled LR per cell
    # the summary tags the run with the lowest val/loss of each cell, as read back from MLflow
    assert assert_best_in_cell(runs) == 2
    best = [r for r in runs if r.data.tags.get("raysweep.best_in_cell") == "true"]
    for r in best:
        settled = parent.data.tags[f"raysweep.settled.{r.data.tags['raysweep.cell'].replace('@', ':')}"]
        assert float(settled) == float(r.data.params["lr"]) == float(r.data.tags["raysweep.settled_lr"])
    assert out.rows and all(row.best_lr is not None for row in out.rows)
    assert math.isfinite(out.median_overhead_s)


def test_worker_group_trial_with_gloo_ddp_tracks_to_a_real_mlflow_server(ray_cluster: None, mlflow_server: str,
                                                                        tmp_path: Path) -> None:
    """One trial as a 2-worker Ray Train group (gloo DDP), recorded through `mlflow server` over HTTP."""
    spec = spec_from_dict(small_spec(
        name="itest-ddp", ladder={"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, epochs=[1.0],
        lr={"base": 0.4, "factor": 2, "low": 0.4, "high": 0.4}, optim={"agc_clip": 0.01},
        resources={"device": "cpu", "workers_per_trial": 2, "cpus_per_worker": 1, "concurrent_trials": 1},
    ))
    out = run_sweep(spec, source="test", tracking_uri=mlflow_server, results_dir=tmp_path / "results", verbose=0)
    assert out.trials == 1
    client = MlflowClient(mlflow_server)
    (run,) = children(client, out.parent_run_id)
    assert run.data.tags["raysweep.status"] == "ok"
    m = run.data.metrics
    assert m["compute/examples"] == 10 * 64  # 640 / 64 global steps; each worker saw half of each batch
    assert m["compute/flops"] == pytest.approx(float(run.data.params["flops_per_example"]) * 10 * 64, rel=1e-3)
    # two CPU workers held for the training time
    assert m["compute/core_hours"] == pytest.approx(2 * m["time/train_s"] / 3600, rel=1e-6)
    assert 0 < m["val/loss"] < 3
    # DDP kept the replicas identical: each rank's digest of its parameters in the final checkpoint
    # (unsynchronised workers, each training on its half of the data, would differ)
    (final,) = {p.parent for p in (tmp_path / "results" / "train").rglob(PARAMS_DIGEST_FILE.format(rank="*"))}
    digests = {p.name: p.read_text().strip() for p in final.glob(PARAMS_DIGEST_FILE.format(rank="*"))}
    assert set(digests) == {PARAMS_DIGEST_FILE.format(rank=0), PARAMS_DIGEST_FILE.format(rank=1)}, digests
    assert len(set(digests.values())) == 1, digests
    # ... and the digest is of the trained parameters rank 0 saved
    state = torch.load(final / STATE_FILE, map_location="cpu", weights_only=True)
    assert param_digest(state["model"]) == digests[PARAMS_DIGEST_FILE.format(rank=0)]


def test_a_crashing_trial_is_failed_retried_and_the_sweep_ends(ray_cluster: None, tmp_path: Path) -> None:
    """A trial that raises inside Ray (a corrupt image) is recorded `failed`, retried, and never hangs the sweep."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(root / cls / f"{i:02d}.png")
    (root / "b" / "zz_corrupt.png").write_bytes(b"not a png at all")
    spec = spec_from_dict(small_spec(
        name="itest-crash", ladder={"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, epochs=[1.0],
        lr={"base": 0.1, "factor": 2, "low": 0.1, "high": 0.1}, batch_size=16,
        data={"dataset": "image_folder", "path": str(root), "val_fraction": 0.2},
        search={"searcher": "grid", "max_retries": 1},
    ))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_sweep(spec, source="test", tracking_uri=uri, results_dir=tmp_path / "results", verbose=0)
    client = MlflowClient(uri)
    runs = sorted(children(client, out.parent_run_id), key=lambda r: r.info.start_time)
    assert [r.data.tags["raysweep.status"] for r in runs] == ["failed", "failed"]  # the trial and 1 retry
    assert all(r.info.status == "FAILED" for r in runs)
    assert "retry after failure (1/1)" in runs[1].data.tags["raysweep.reason"]
    assert client.get_run(out.parent_run_id).info.status == "FINISHED"
    (row,) = out.rows
    assert row.best_lr is None and row.failed == 2
    # settled (out of retries), and nothing trained: `raysweep run` ends with an error line, exit 1
    assert out.unsettled == () and out.all_failed == ("nfnet_t0@1",)
