"""Trials on TPU pod slices, on a real multi-node Ray cluster whose hosts fake TPU v4 slices.

Two v4-16 slices of 2 hosts each, faked the way Ray's own TPU tests fake them: TPU resources,
`ray.io/tpu-*` labels and `TPU_*` variables per host, and PJRT on the CPU. A real 2-concurrent
sweep runs through raysweep's torch_xla backend. What this proves: Ray reserves one whole slice per
trial (every worker of a trial on one slice, concurrent trials on different slices), each host's
environment is what torch_xla reads, and the runs land in MLflow. What it cannot prove: the
cross-host XLA rendezvous (torch_xla has no multi-process CPU mode), so each fake host is an XLA
world of one and reads the whole batch. The fake hosts compile with XLA's backend optimisation
off (`FAST_COMPILE`), and the model is the smallest ViT (vit_t0), whose step XLA compiles about 3x
faster than an NFNet's: compiling takes most of this test's time, and neither the model nor its
speed is what this test checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raysweep.config import spec_from_dict

SLICES = ("slice-a", "slice-b")
HOSTS = 2
# LLVM at -O0 on the fake hosts: an NFNet step compiles about 4x faster on PJRT's CPU client
FAST_COMPILE = {"XLA_FLAGS": "--xla_backend_optimization_level=0"}


@pytest.fixture()
def fake_tpu_cluster(tmp_path: Path) -> Iterator[object]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for name in SLICES:
        for worker_id in range(HOSTS):
            resources = {"TPU": 4, "accelerator_type:TPU-V4": 1, name: 1}
            if worker_id == 0:
                resources["TPU-v4-16-head"] = 1
            cluster.add_node(
                num_cpus=1, resources=resources,
                labels={"ray.io/tpu-slice-name": name, "ray.io/tpu-worker-id": str(worker_id),
                        "ray.io/tpu-pod-type": "v4-16", "ray.io/tpu-topology": "2x2x2",
                        "ray.io/accelerator-type": "TPU-V4"},
                env_vars={"TPU_NAME": name, "TPU_WORKER_ID": str(worker_id), "TPU_ACCELERATOR_TYPE": "v4-16",
                          "TPU_TOPOLOGY": "2x2x2", "PJRT_DEVICE": "CPU", **FAST_COMPILE},
            )
    ray.init(address=cluster.address)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_two_concurrent_trials_each_hold_one_whole_slice(fake_tpu_cluster: object, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from raysweep.core.records import Tag
    from raysweep.sweep.runner import run_sweep
    from raysweep.tracking import resolve_tracking_uri

    spec = spec_from_dict({
        "name": "tpu", "ladder": {"family": "vit_cpu", "rungs": ["vit_t0"]}, "epochs": [0.5],
        "lr": {"base": 0.4, "low": 0.2, "high": 0.4},
        "data": {"dataset": "mnist5k", "train_subset": 256}, "batch_size": 64, "eval_batch_size": 100,
        "resources": {"device": "xla", "tpu": {"accelerator_type": "TPU-V4", "topology": "2x2x2"},
                      "concurrent_trials": 2},
        "search": {"searcher": "grid"}, "tracking": {"experiment": "tpu"},
    })
    uri = resolve_tracking_uri(None, None, cwd=tmp_path)
    out = run_sweep(spec, source="<test>", tracking_uri=uri, results_dir=tmp_path / "results", verbose=1)
    assert out.trials == 2

    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "train").glob("*/hosts/rank-*.json")]
    by_trial: dict[str, list[dict]] = {}
    for r in records:
        by_trial.setdefault(r["trial"], []).append(r)
    assert len(by_trial) == 2 and all(len(rs) == HOSTS for rs in by_trial.values())
    slices = []
    for rs in by_trial.values():
        labels = [r["node_labels"] for r in rs]
        names = {lab["ray.io/tpu-slice-name"] for lab in labels}
        assert len(names) == 1, f"a trial's workers spread over slices {names}"  # one whole slice per trial
        assert sorted(lab["ray.io/tpu-worker-id"] for lab in labels) == ["0", "1"]  # every host of it
        slices.append(names.pop())
        for r in rs:
            env = r["env"]
            # what libtpu/torch_xla read on a TPU host, as the host itself set it
            assert env["TPU_NAME"] == r["node_labels"]["ray.io/tpu-slice-name"]
            assert env["TPU_WORKER_ID"] == r["node_labels"]["ray.io/tpu-worker-id"]
            assert env["PJRT_DEVICE"] == "CPU" and env["XLA_NO_SPECIAL_SCALARS"] == "1"
            assert FAST_COMPILE["XLA_FLAGS"] in env["XLA_FLAGS"].split(" ")  # the host's own XLA settings reach torch_xla
            assert r["pjrt_device"] == "CPU" and r["spmd"] is True
            # a fake host is an XLA world of one: its process index is 0 and it reads the whole batch
            assert (r["xla_process_index"], r["xla_process_count"]) == (0, 1)
            assert (r["data_rank"], r["data_world"]) == (0, 1)
        assert sorted(r["rank"] for r in rs) == [0, 1] and {r["world"] for r in rs} == {HOSTS}
    assert sorted(slices) == sorted(SLICES)  # concurrent trials sat on different slices

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tpu")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'")
    assert len(runs) == 2
    assert {r.data.tags[Tag.STATUS] for r in runs} == {"ok"}
    assert all(r.data.metrics["time/compile_s"] > 0 for r in runs)
    assert not os.environ.get("PJRT_DEVICE")  # the driver process never chose a PJRT device
