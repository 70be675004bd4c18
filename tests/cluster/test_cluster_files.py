"""The cluster definitions in cluster/, checked offline: the launcher YAML by Ray's own
`validate_config`, the KubeRay manifest by the rules the GKE TPU webhook enforces, both against the
slice the paper's search space asks for, and neither with a secret written in it."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.config import TpuSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "cluster" / "gcp-tpu-v4.yaml"
KUBERAY = ROOT / "cluster" / "kuberay-tpu.yaml"
PAPER = load_spec(ROOT / "search_spaces" / "paper_nfnet.yaml")


def launcher() -> dict[str, Any]:
    return yaml.safe_load(LAUNCHER.read_text())


def manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d]


def ray_cluster(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (rc,) = [d for d in docs if d["kind"] == "RayCluster"]
    return rc


# The cluster launcher ----------------------------------------------------------------------------


def validate_launcher(config: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_rays_validate_config_accepts_the_launcher_yaml() -> None:
    validate_launcher(launcher())


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(workers=3),                                   # an unknown key
    lambda c: c.update(head_node_type="ray_tpu"),                    # not a node type
    lambda c: c["available_node_types"]["ray_tpu_v4_16"].update(min_workers=3),  # more than max_workers
])
def test_rays_validate_config_would_catch_a_broken_launcher_yaml(mutate: Any) -> None:
    import jsonschema

    config = launcher()
    mutate(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_launcher(config)


def test_the_launcher_brings_up_the_slices_the_paper_space_asks_for() -> None:
    config = launcher()
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]["node_config"]
    assert "machineType" in head and not {"acceleratorType", "acceleratorConfig"} & set(head)  # a TPU cannot be the head
    tpus = {name: n for name, n in nodes.items() if {"acceleratorType", "acceleratorConfig"} & set(n["node_config"])}
    assert list(tpus) == ["ray_tpu_v4_16"]
    node = tpus["ray_tpu_v4_16"]
    cfg = node["node_config"]
    # Ray's GCP provider (_validate_tpu_config): one of the two forms, a V<generation> type, an AxBxC topology
    assert "machineType" not in cfg and "acceleratorType" not in cfg
    accel = cfg["acceleratorConfig"]
    assert re.fullmatch(r"V\d+[a-zA-Z]*", accel["type"]) and re.fullmatch(r"\d+x\d+(x\d+)?", accel["topology"])
    slice_ = TpuSpec(f"TPU-{accel['type']}", accel["topology"])
    slice_.validate()
    assert slice_ == PAPER.resources.tpu
    # slices are held, not autoscaled; as many as the sweep runs at once
    assert node["min_workers"] == node["max_workers"] == config["max_workers"] == PAPER.resources.concurrent_trials


def test_the_launcher_installs_raysweep_with_the_tpu_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("torch_xla[tpu]==2.9.0") for r in extras["tpu"])
    setup = " ".join(launcher()["setup_commands"])
    assert re.search(r'pip install .*raysweep\[tpu[,\]]', setup), setup
    starts = launcher()["head_start_ray_commands"] + launcher()["worker_start_ray_commands"]
    assert all(re.search(r"RAY_AUTH_MODE=token\b.*ray start", c, re.DOTALL) for c in starts if "ray start" in c)
    head = " ".join(launcher()["head_start_ray_commands"])
    # RAY_JOB_STOP_WAIT_TIME_S: the 30 s grace tests/integration/test_job_stop.py measures the driver within
    for var in ("MLFLOW_TRACKING_URI=http://127.0.0.1:5000", "RAYSWEEP_RESULTS=/mnt/raysweep/", "RAYSWEEP_OPTUNA_STORAGE=",
                "RAY_JOB_STOP_WAIT_TIME_S=30"):
        assert var in head


# KubeRay -------------------------------------------------------------------------------------


def tpu_chips(container: dict[str, Any]) -> int:
    """google.com/tpu requested by a container (the webhook reads the request, else the limit)."""
    res = container.get("resources", {})
    value = res.get("requests", {}).get("google.com/tpu") or res.get("limits", {}).get("google.com/tpu") or 0
    return int(value)


def webhook_admits(group: dict[str, Any]) -> str | None:
    """The kuberay-tpu-webhook's checks of a TPU worker group (validateRayCluster and
    checkWorkersMatchTopology in ai-on-gke/kuberay-tpu-webhook main.go), plus GKE's own rule that an
    extended resource's request equals its limit. Returns why it would refuse, or None."""
    spec = group["template"]["spec"]
    containers = spec.get("containers") or []
    if not containers:
        return "Container path not specified"
    chips_per_host = sum(tpu_chips(c) for c in containers)
    if not chips_per_host:
        return None  # not a TPU group: passed through
    for c in containers:
        req = c.get("resources", {}).get("requests", {}).get("google.com/tpu")
        lim = c.get("resources", {}).get("limits", {}).get("google.com/tpu")
        if req != lim:
            return f"google.com/tpu request {req} != limit {lim}"
    if not group.get("numOfHosts"):
        return "workerGroupSpec NumOfHosts not set"
    selector = spec.get("nodeSelector", {})
    topology = selector.get("cloud.google.com/gke-tpu-topology", "")
    if not topology:
        return "TPU topology not specified"
    if not selector.get("cloud.google.com/gke-tpu-accelerator"):
        return "no cloud.google.com/gke-tpu-accelerator node selector: GKE would not place it on a TPU node"
    chips = 1
    for dim in topology.split("x"):
        chips *= int(dim)
    if max(chips // chips_per_host, 1) != group["numOfHosts"]:
        return "Number of workers in worker group not equal to specified topology"
    return None


def tpu_group(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (group,) = ray_cluster(docs)["spec"]["workerGroupSpecs"]
    return group


def test_the_tpu_worker_group_passes_the_gke_tpu_webhook_rules() -> None:
    group = tpu_group(manifests())
    assert webhook_admits(group) is None
    spec = PAPER.resources.tpu
    assert spec is not None
    selector = group["template"]["spec"]["nodeSelector"]
    assert selector["cloud.google.com/gke-tpu-topology"] == spec.topology
    assert selector["cloud.google.com/gke-tpu-accelerator"] == "tpu-v4-podslice"  # GKE's name for TPU-V4 slices
    assert group["numOfHosts"] == spec.hosts()
    assert tpu_chips(group["template"]["spec"]["containers"][0]) == spec.chips_per_host()
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == PAPER.resources.concurrent_trials


@pytest.mark.parametrize("mutate, reason", [
    (lambda g: g.update(numOfHosts=4), "not equal to specified topology"),
    (lambda g: g.pop("numOfHosts"), "NumOfHosts not set"),
    (lambda g: g["template"]["spec"]["nodeSelector"].pop("cloud.google.com/gke-tpu-topology"), "topology not specified"),
    (lambda g: g["template"]["spec"]["nodeSelector"].pop("cloud.google.com/gke-tpu-accelerator"), "gke-tpu-accelerator"),
    (lambda g: g["template"]["spec"]["containers"][0]["resources"]["limits"].update({"google.com/tpu": "8"}),
     "request 4 != limit 8"),
])
def test_the_webhook_rules_refuse_a_broken_group(mutate: Any, reason: str) -> None:
    group = tpu_group(manifests())
    mutate(group)
    assert reason in (webhook_admits(group) or "")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_mlflow_and_postgres_sit_beside_the_cluster_and_secrets_come_from_a_secret() -> None:
    docs = manifests()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in ("raysweep-mlflow", "raysweep-postgres"):
        assert ("Deployment", name) in kinds and ("Service", name) in kinds
    head = ray_cluster(docs)["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = env_of(head)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://raysweep-mlflow:5000"
    assert env["RAYSWEEP_RESULTS"]["value"].startswith("/mnt/raysweep/")
    assert env["RAY_JOB_STOP_WAIT_TIME_S"]["value"] == "30"  # `ray job stop`: 30 s for the driver to close the sweep
    assert env["RAYSWEEP_OPTUNA_STORAGE"]["value"].startswith("postgresql+psycopg://raysweep:$(POSTGRES_PASSWORD)@raysweep-postgres:5432/")
    # every password or token anywhere comes from the Secret, never a literal
    containers = [c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]
    rc = ray_cluster(docs)["spec"]
    containers += [head] + [c for g in rc["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]]
    secret_vars = [e for c in containers for e in c.get("env", []) if re.search("PASSWORD|TOKEN", e["name"])]
    assert len(secret_vars) >= 4
    for e in secret_vars:
        assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == "raysweep-secrets", e
    # the workers get the Ray token only
    workers = [c for g in rc["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]]
    assert all("POSTGRES_PASSWORD" not in env_of(c) for c in workers)


@pytest.mark.parametrize("path", [LAUNCHER, KUBERAY])
def test_no_credential_is_written_in_the_cluster_files(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"://[^/\s:@]+:[^/\s@$]+@", text)  # user:password@ in a URL ($(VAR) references allowed)
    assert not re.search(r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text)
