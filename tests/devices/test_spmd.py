"""SPMD in one process: the batch sharded over 4 PJRT CPU devices trains exactly like one XLA device,
and like eager CPU up to float reordering.

torch_xla has no multi-process CPU mode, so this is the half of a multi-host TPU trial that CPU can
run: the same SPMD program, the same global mesh and batch sharding, in one process with
CPU_NUM_DEVICES devices. Each mode runs in its own subprocess because the PJRT runtime, once
started, keeps its device count and SPMD mode for the life of the process. The XLA runs compile
with LLVM's optimisation off (`FAST_COMPILE`, about 4x faster to compile an NFNet step): compile
time is most of this test, and both XLA runs use the same setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

FAST_COMPILE = {"XLA_FLAGS": "--xla_backend_optimization_level=0"}

CODE = textwrap.dedent("""
    import json, sys, torch
    from raysweep.config import spec_from_dict
    from raysweep.devices import device_for
    from raysweep.train.loop import run_training
    from raysweep.config.trial import TrialConfig
    device_name, out = sys.argv[1], sys.argv[2]
    spec = spec_from_dict({"name": "s", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]},
                           "epochs": [1], "data": {"dataset": "mnist5k", "train_subset": 384},
                           "batch_size": 64, "eval_batch_size": 100,
                           "resources": {"device": device_name}, "search": {"searcher": "grid"}})
    cfg = TrialConfig(spec, "nfnet_t0", 1.0, 0.4)
    device = device_for(spec.resources)
    device.setup_process(compile_cache=None)
    place = device.placement(rank=0, world=1)
    states = []
    final = run_training(cfg, lambda m, s: states.append(s) if s is not None else None, place)
    params = {k: v.detach().cpu() for k, v in states[-1]["model"].items()}
    torch.save(params, out + ".pt")
    json.dump({"loss": final["val/loss"], "steps": final["step"], "devices": place.devices_in_group,
               "compile_s": final["time/compile_s"]}, open(out + ".json", "w"))
""")


def _run(tmp: Path, device: str, n_devices: int | None) -> tuple[dict, dict[str, torch.Tensor]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "PJRT_", "CPU_NUM_DEVICES"))}
    env["PJRT_DEVICE"] = "CPU"
    env.update(FAST_COMPILE)
    if n_devices:
        env["CPU_NUM_DEVICES"] = str(n_devices)
    out = tmp / f"{device}-{n_devices}"
    proc = subprocess.run([sys.executable, "-c", CODE, device, str(out)], capture_output=True, text=True,
                          timeout=900, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.with_suffix(".json").read_text()), torch.load(out.with_suffix(".pt"))


@pytest.mark.slow
def test_sharded_steps_equal_unsharded_xla_steps_and_eager_cpu(tmp_path: Path) -> None:
    sharded, p_sharded = _run(tmp_path, "xla", 4)
    single, p_single = _run(tmp_path, "xla", None)
    eager, p_eager = _run(tmp_path, "cpu", None)
    assert sharded["devices"] == 4 and single["devices"] == 1  # the mesh really spans 4 devices
    assert sharded["steps"] == single["steps"] == eager["steps"] == 6
    assert sharded["loss"] == pytest.approx(single["loss"], abs=1e-5)
    for name, p in p_single.items():
        torch.testing.assert_close(p_sharded[name], p, atol=1e-5, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    assert sharded["loss"] == pytest.approx(eager["loss"], rel=1e-3)
    for name, p in p_eager.items():
        torch.testing.assert_close(p_sharded[name], p, atol=1e-3, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")
    assert sharded["compile_s"] > 0 and eager["compile_s"] == 0
