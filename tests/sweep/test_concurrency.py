"""The pre-launch check of what the cluster holds: trials at once, and the one-line refusals."""

from __future__ import annotations

import pytest

from raysweep.config import spec_from_dict
from raysweep.core.errors import SpecError
from raysweep.sweep.runner import concurrency

BASE = {"name": "t", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1],
        "lr": {"base": 0.4, "low": 0.4, "high": 0.4}, "batch_size": 64}
TPU = {"device": "xla", "tpu": {"accelerator_type": "TPU-V4", "topology": "2x2x2"}, "concurrent_trials": 4}


def spec(**resources: object):  # type: ignore[no-untyped-def]
    return spec_from_dict({**BASE, "resources": resources})


def test_cpu_trials_are_capped_by_the_cpus() -> None:
    assert concurrency(spec(concurrent_trials=4), {"CPU": 2}) == 2
    assert concurrency(spec(concurrent_trials=4, workers_per_trial=2), {"CPU": 8}) == 4
    with pytest.raises(SpecError, match="resources.cpus_per_worker"):
        concurrency(spec(cpus_per_worker=64), {"CPU": 2})
    with pytest.raises(SpecError, match="resources.gpus_per_worker"):
        concurrency(spec(device="cuda", gpus_per_worker=1), {"CPU": 2})


def test_tpu_trials_are_capped_by_the_slices_of_their_shape() -> None:
    # two v4-16 slices of 2 hosts (240 CPUs each), and a v4-8 that does not count
    cluster = {"CPU": 962, "TPU": 20, "TPU-v4-16-head": 2, "TPU-v4-8-head": 1}
    assert concurrency(spec(**TPU), cluster) == 2
    with pytest.raises(SpecError, match=r"resources.tpu: expected a cluster with a v4-16 slice .*got none"):
        concurrency(spec(**TPU), {"CPU": 8, "TPU": 4, "TPU-v4-8-head": 1})
