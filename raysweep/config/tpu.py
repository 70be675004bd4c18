"""TPU slice arithmetic, restated from Ray 2.60 so that config validation needs no Ray import.

A slice is named the way Ray Train's `ScalingConfig` names it: an accelerator type such as
`TPU-V4` and a topology such as `2x2x2` (chips along each axis). From those two Ray derives the
chips per host, the hosts (one Ray Train worker each) and the pod type (`v4-16`: cores, not chips)
that its node labels and the `TPU-<pod type>-head` resource carry. The rules below follow
`ray/_private/accelerators/tpu.py` and `ray/util/tpu.py`; `tests/unit/test_tpu.py` pins every
(type, topology) pair against Ray's own functions, so an upgrade of Ray that changes them fails
there rather than on a pod.
"""

from __future__ import annotations

import math

# Ray's accelerator-type constants (ray.util.accelerators: GOOGLE_TPU_V4 = "TPU-V4", ...)
ACCELERATOR_TYPES = ("TPU-V2", "TPU-V3", "TPU-V4", "TPU-V5P", "TPU-V5LITEPOD", "TPU-V6E", "TPU-V7X")

_CHIPS_PER_HOST = 4  # every multi-host slice of every generation has 4-chip hosts
_SINGLE_CORE = ("v5litepod", "v6e")  # one TensorCore per chip; the others have two
_EIGHT_CHIP_HOSTS = ("v5litepod", "v6e")  # single-host slices of these pack up to 8 chips
_SINGLE_HOST_TOPOLOGIES = ("1x1", "2x2", "2x4")


def _larger_3d(max_x: int, max_y: int, max_z: int) -> set[str]:
    step = _CHIPS_PER_HOST  # Ray builds the big 3D shapes in steps of 4 along each axis
    return {f"{x}x{y}x{z}" for x in range(step, max_x + 1, step) for y in range(step, max_y + 1, step)
            for z in range(step, max_z + 1, step)}


_SMALL_3D = {"2x2x1", "2x2x2", "2x2x4", "2x4x4"}
_2D_PODS = {"1x1", "2x2", "2x4", "2x8", "4x4", "4x8", "8x8", "8x16", "16x16"}
TOPOLOGIES: dict[str, frozenset[str]] = {
    "v2": frozenset({"4x4", "4x8", "8x8", "8x16", "16x16"}),
    "v3": frozenset({"4x4", "4x8", "8x8", "8x16", "16x16", "16x32", "32x32"}),
    "v4": frozenset(_SMALL_3D | _larger_3d(12, 12, 16)),
    "v5p": frozenset(_SMALL_3D | _larger_3d(16, 16, 24)),
    "v5litepod": frozenset(_2D_PODS),
    "v6e": frozenset(_2D_PODS),
    "v7x": frozenset(_SMALL_3D | {"4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16", "8x16x16"}),
}


def version(accelerator_type: str) -> str:
    """`TPU-V4` -> `v4` (Ray: `ray.util.tpu.get_tpu_version_from_type`)."""
    if accelerator_type not in ACCELERATOR_TYPES:
        raise ValueError(f"expected one of {list(ACCELERATOR_TYPES)}, got {accelerator_type!r}")
    return accelerator_type.lower().removeprefix("tpu-")


def chips(topology: str) -> int:
    """Chips in a topology: the product of its axes (`2x2x2` -> 8)."""
    return math.prod(int(d) for d in topology.split("x"))


def chips_per_host(accelerator_type: str, topology: str) -> int:
    """Ray: `ray._private.accelerators.tpu.get_chips_per_host`."""
    if version(accelerator_type) in _EIGHT_CHIP_HOSTS and topology in _SINGLE_HOST_TOPOLOGIES:
        return chips(topology)
    return _CHIPS_PER_HOST


def hosts(accelerator_type: str, topology: str) -> int:
    """TPU VMs in the slice, one Ray Train worker each (Ray: `get_tpu_worker_resources(...)[0]`).
    A sub-host slice (`2x2x1`: 4 chips) is still one host."""
    return max(1, chips(topology) // chips_per_host(accelerator_type, topology))


def cores_per_chip(accelerator_type: str) -> int:
    """TensorCores per chip (Ray: `get_tpu_cores_per_chip`): the unit of "TPU core-hours"."""
    return 1 if version(accelerator_type) in _SINGLE_CORE else 2


def pod_type(accelerator_type: str, topology: str) -> str:
    """`v4-16` for a TPU-V4 2x2x2: the generation and its core count (Ray:
    `infer_tpu_pod_type_from_topology`), as in the `ray.io/tpu-pod-type` label and `TPU-v4-16-head`."""
    return f"{version(accelerator_type)}-{chips(topology) * cores_per_chip(accelerator_type)}"


def check(accelerator_type: str, topology: str) -> None:
    """Raise ValueError unless Ray knows this (type, topology) pair."""
    v = version(accelerator_type)
    if topology not in TOPOLOGIES[v]:
        shown = sorted(TOPOLOGIES[v], key=lambda t: (chips(t), t))[:8]
        raise ValueError(f"expected a {accelerator_type} topology such as {', '.join(shown)}, ..., got {topology!r}")
