"""`resources.device` reaches the worker through one device object: each gets the placement its loop needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from raysweep.config import spec_from_dict
from raysweep.devices import DEVICES, device_for

BASE = {"name": "p", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1]}


def test_cpu_placement_counts_workers_as_devices() -> None:
    spec = spec_from_dict({**BASE, "resources": {"cpus_per_worker": 1}})
    place = device_for(spec.resources).placement(rank=1, world=2)
    assert place.device == torch.device("cpu") and place.world == 2 and place.devices_in_group == 2
    assert (place.data_rank, place.data_world) == (1, 2) and place.ddp and not place.lazy


def test_every_config_device_has_one_device_object() -> None:
    import typing

    from raysweep.config import Device

    assert set(typing.get_args(Device)) == set(DEVICES)


def test_trial_resources_and_concurrency_come_from_the_device() -> None:
    from raysweep.core.errors import SpecError

    local = device_for(spec_from_dict({**BASE, "resources": {"cpus_per_worker": 2, "concurrent_trials": 4}}).resources)
    assert local.trial_resources() == {"CPU": 2.0}
    assert local.concurrency({"CPU": 5}) == (2, local.concurrency({"CPU": 5})[1])
    assert "fits 2 of the 4" in str(local.concurrency({"CPU": 5})[1])
    group = device_for(spec_from_dict({**BASE, "resources": {"workers_per_trial": 2}}).resources)
    assert group.trial_resources()["CPU"] == 0 and group.trial_demand() == {"CPU": 2.0}
    with pytest.raises(SpecError, match="cpus_per_worker"):
        group.concurrency({"CPU": 1})


@pytest.mark.slow  # starts torch_xla on PJRT CPU
def test_xla_placement_is_lazy_on_an_xla_device() -> None:
    # A subprocess: importing torch_xla starts a PJRT client we do not want in the test process.
    code = textwrap.dedent("""
        from raysweep.config import spec_from_dict
        from raysweep.devices import device_for
        spec = spec_from_dict({"name": "p", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
                               "epochs": [1], "resources": {"device": "xla"}})
        device = device_for(spec.resources)
        device.setup_process(compile_cache=None)
        place = device.placement(rank=0, world=1)
        print(place.device.type, place.lazy, place.devices_in_group)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env={"PJRT_DEVICE": "CPU", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["xla", "True", "1"]


@pytest.mark.slow
def test_xla_on_pjrt_cpu_trains_like_eager_cpu() -> None:
    """The loop on torch_xla (PJRT CPU) reaches the same validation loss as eager CPU (XLA compiling
    with LLVM's optimisation off, about 4x faster to compile; the numbers are what is checked)."""
    code = textwrap.dedent("""
        import sys
        from raysweep.config import spec_from_dict
        from raysweep.train.loop import run_training
        from raysweep.devices import device_for
        from raysweep.config.trial import TrialConfig
        spec = spec_from_dict({"name": "x", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
                               "epochs": [1], "data": {"dataset": "mnist5k", "train_subset": 512},
                               "resources": {"device": sys.argv[1]}, "search": {"searcher": "grid"}})
        cfg = TrialConfig(spec, "nfnet_t0", 1.0, 0.4)
        device = device_for(spec.resources)
        device.setup_process(compile_cache=None)
        out = run_training(cfg, lambda m, s: None, device.placement(rank=0, world=1))
        print(out["status"], out["val/loss"], out["step"])
    """)
    results = []
    for device in ("cpu", "xla"):
        proc = subprocess.run([sys.executable, "-c", code, device], capture_output=True, text=True, timeout=600,
                              check=False, env={"PJRT_DEVICE": "CPU", "PATH": "/usr/bin:/bin",
                                                   "XLA_FLAGS": "--xla_backend_optimization_level=0"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        status, loss, steps = proc.stdout.split()[-3:]
        results.append((status, float(loss), int(steps)))
    (s_cpu, l_cpu, n_cpu), (s_xla, l_xla, n_xla) = results
    assert s_cpu == s_xla == "ok" and n_cpu == n_xla == 8
    assert l_xla == pytest.approx(l_cpu, rel=1e-3)
