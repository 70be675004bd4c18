"""The TPU slice arithmetic of raysweep/tpu.py against Ray 2.60's own functions, for every
(type, topology) pair Ray knows, and the `resources.tpu` validation of the search space."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysweep.config import TpuSpec, load_spec, tpu
from raysweep.core.errors import SpecError

PAIRS = [(t, topo) for t in tpu.ACCELERATOR_TYPES for topo in sorted(tpu.TOPOLOGIES[tpu.version(t)])]


def test_accelerator_types_and_topologies_are_rays() -> None:
    import ray.util.accelerators.accelerators as accel
    from ray._private.accelerators.tpu import VALID_TPU_TOPOLOGY, VALID_TPU_TYPES

    rays = {v for k, v in vars(accel).items() if k.startswith("GOOGLE_TPU_")}
    assert set(tpu.ACCELERATOR_TYPES) == rays
    assert {tpu.version(t) for t in tpu.ACCELERATOR_TYPES} == set(VALID_TPU_TYPES)
    assert {v: set(s) for v, s in tpu.TOPOLOGIES.items()} == {v: set(s) for v, s in VALID_TPU_TOPOLOGY.items()}


@pytest.mark.parametrize("accelerator_type, topology", PAIRS)
def test_slice_arithmetic_matches_ray(accelerator_type: str, topology: str) -> None:
    from ray._private.accelerators.tpu import (
        get_chips_per_host,
        get_num_chips_from_topology,
        infer_tpu_pod_type_from_topology,
    )
    from ray.util.tpu import get_tpu_version_from_type, get_tpu_worker_resources

    v = get_tpu_version_from_type(accelerator_type)
    assert tpu.version(accelerator_type) == v
    assert tpu.chips(topology) == get_num_chips_from_topology(topology)
    assert tpu.chips_per_host(accelerator_type, topology) == get_chips_per_host(topology, v)
    workers, per_worker = get_tpu_worker_resources(topology=topology, accelerator_type=accelerator_type,
                                                   tpu_resource_per_chip=1)
    assert tpu.hosts(accelerator_type, topology) == workers, per_worker
    assert tpu.pod_type(accelerator_type, topology) == infer_tpu_pod_type_from_topology(topology, accelerator_type)


def test_rays_scaling_config_accepts_what_raysweep_accepts() -> None:
    from ray.train import ScalingConfig

    spec = TpuSpec("TPU-V4", "2x2x2")
    ScalingConfig(num_workers=spec.hosts(), use_tpu=True, topology=spec.topology,
                  accelerator_type=spec.accelerator_type)  # raises ValueError if Ray disagrees
    assert (spec.chips(), spec.chips_per_host(), spec.hosts(), spec.pod_type()) == (8, 4, 2, "v4-16")
    big = TpuSpec("TPU-V4", "4x4x4")
    assert (big.chips(), big.hosts(), big.pod_type()) == (64, 16, "v4-128")
    assert TpuSpec("TPU-V6E", "2x4").hosts() == 1 and TpuSpec("TPU-V6E", "4x4").pod_type() == "v6e-16"


BASE = {"name": "t", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1], "batch_size": 64,
        "lr": {"base": 0.4, "low": 0.1, "high": 0.8},
        "resources": {"device": "xla", "tpu": {"accelerator_type": "TPU-V4", "topology": "2x2x2"}}}


def load(tmp_path: Path, patch: dict | None = None, overrides: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    raw = {**BASE, "resources": {**BASE["resources"], **(patch or {})}}
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(raw))
    return load_spec(p, overrides)


def test_a_slice_per_trial_loads(tmp_path: Path) -> None:
    spec = load(tmp_path)
    assert spec.resources.tpu == TpuSpec("TPU-V4", "2x2x2")
    assert spec.resources.workers() == 2  # one per host, though workers_per_trial is 0
    assert load(tmp_path, {"workers_per_trial": 4}).resources.workers() == 4  # two slices' worth
    over = load(tmp_path, overrides=("resources.tpu.topology=2x2x4",))
    assert over.resources.tpu is not None and over.resources.tpu.hosts() == 4


@pytest.mark.parametrize(
    "patch, key, expected",
    [
        ({"device": "cpu"}, "resources.device", "expected device xla"),
        ({"gpus_per_worker": 1}, "resources.gpus_per_worker", "no GPUs"),
        ({"workers_per_trial": 3}, "resources.workers_per_trial", "multiple of the 2 hosts of a v4-16"),
        ({"tpu": {"accelerator_type": "v4", "topology": "2x2x2"}}, "resources.tpu.accelerator_type", "TPU-V4"),
        ({"tpu": {"accelerator_type": "TPU-V4", "topology": "2x2"}}, "resources.tpu.topology", "2x2x1"),
        ({"tpu": {"accelerator_type": "TPU-V6E", "topology": "2x2x2"}}, "resources.tpu.topology", "2x4"),
        ({"tpu": {"accelerator_type": "TPU-V4"}}, "resources.tpu.topology", "required key is missing"),
        ({"tpu": {"accelerator_type": "TPU-V4", "topology": "2x2x2", "zone": "x"}}, "resources.tpu.zone",
         "unknown key"),
    ],
)
def test_a_bad_slice_is_one_line_naming_the_key(tmp_path: Path, patch: dict, key: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path, patch)
    msg = str(info.value)
    assert f": {key}: " in msg and expected in msg and "\n" not in msg, msg


def test_the_batch_must_shard_evenly_over_the_chips(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"batch_size: expected a multiple of the 8 chips of a v4-16 slice, got 36"):
        load(tmp_path, overrides=("batch_size=36",))


def test_xla_without_a_slice_still_refuses_several_workers(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="workers_per_trial"):
        load(tmp_path, {"tpu": None, "workers_per_trial": 2})
