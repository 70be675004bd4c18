"""Issue 15, part 4: training from shards gives the in-memory loader's per-step losses, bit for bit.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/shards_equivalence.py [--epochs 0.5] [--json out.json]

The full Fashion-MNIST study's dataset (`search_spaces/study/fashion_nfnet.yaml`: fashion_mnist,
60k training pool, val_fraction 0.1, so 54,000 training examples) is converted to shards with
`raysweep data convert fashion_mnist DIR`. Then the real training loop (`raysweep.train.loop.
run_training`, what a trial runs, with the study's recipe: batch 64, AGC 0.16, its LR grid's base)
trains one rung (nfnet_t0) on CPU at one seed three times:

1. from memory (`dataset: fashion_mnist`),
2. from the shards (`dataset: shards`, the default `loader_workers: 2`: decoding in worker processes),
3. from the shards again, resumed from run 2's mid-epoch checkpoint (`checkpoint.every_steps`).

Every training loss the loop computes is recorded (the loop is unchanged: the script hands the loop
module a `torch.nn.functional` whose `cross_entropy` also keeps each mean-reduced loss it returns,
i.e. each training step's; evaluation uses `reduction="none"` and is not recorded). The table
compares every step's loss exactly (float equality), gives the largest absolute difference, and
compares the data-order digest (`data/order_digest`), the validation loss and the checkpoint's read
position. The script exits 1 if any of them differs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional
import yaml

from raysweep.cli import main as cli_main
from raysweep.config import spec_from_dict
from raysweep.config.trial import TrialConfig
from raysweep.core.records import M
from raysweep.train import loop
from raysweep.train.loop import Placement, run_training

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "search_spaces" / "study" / "fashion_nfnet.yaml"


class _Recorded:
    """`torch.nn.functional` as the loop module sees it, keeping every training loss it computes."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.nn.functional, name)

    def cross_entropy(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(*args, **kwargs)
        if kwargs.get("reduction", "mean") == "mean":  # the training step's (evaluate() asks for "none")
            self.losses.append(float(loss.detach()))
        return loss


def trial(raw: dict[str, Any], data: dict[str, Any], *, rung: str, epochs: float, lr: float,
          every_steps: int) -> TrialConfig:
    spec = spec_from_dict({**raw, "data": data, "epochs": [epochs], "ladder": {**raw["ladder"], "rungs": [rung]},
                           "checkpoint": {"every_steps": every_steps}}, file=str(STUDY))
    return TrialConfig(spec, rung, epochs, lr)


def train(cfg: TrialConfig, resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run of the loop: its losses, final metrics, checkpoints (by step) and wall time."""
    recorded = _Recorded()
    states: dict[int, dict[str, Any]] = {}

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is not None:
            states[int(metrics[M.STEP])] = copy.deepcopy(state)

    t = time.perf_counter()
    with mock.patch.object(loop, "F", recorded):
        out = run_training(cfg, report, Placement(torch.device("cpu")), resume=resume)
    return {"losses": recorded.losses, "out": out, "states": states, "seconds": time.perf_counter() - t}


def compare(got: list[float], want: list[float]) -> tuple[int, float]:
    """(steps whose loss is exactly equal, largest absolute difference)."""
    if len(got) != len(want):
        return 0, float("inf")
    equal = sum(a == b for a, b in zip(got, want))
    return equal, max((abs(a - b) for a, b in zip(got, want)), default=0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rung", default="nfnet_t0")
    ap.add_argument("--epochs", type=float, default=1.25, help="the budget (1.25 of 54,000 at batch 64: 1,054 steps)")
    ap.add_argument("--lr", type=float, default=None, help="peak LR (default: the study's lr.base)")
    ap.add_argument("--resume-at", type=int, default=0, help="checkpoint step to resume from (0: half the steps)")
    ap.add_argument("--workers", type=int, default=2, help="data.loader_workers of the shard runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("shards_equivalence.txt"))
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the converted shards (in /tmp)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as a trial (resources.cpus_per_worker: 1)
    raw = yaml.safe_load(STUDY.read_text())
    lr = args.lr if args.lr is not None else float(raw["lr"]["base"])
    n_train = 60_000 - round(60_000 * float(raw["data"]["val_fraction"]))
    steps = int(args.epochs * n_train // raw["batch_size"])
    at = args.resume_at or steps // 2
    work = Path(tempfile.mkdtemp(prefix="raysweep-equivalence-", dir="/tmp"))
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    try:
        say(f"shards_equivalence: torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, 1 torch "
            f"thread; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say(f"study {STUDY.relative_to(ROOT)}: data {raw['data']}, batch {raw['batch_size']}, optim {raw['optim']}")
        say(f"trial: {args.rung}, {args.epochs:g} epoch ({steps} steps over {n_train:,} examples), lr {lr:g}, "
            f"seed 0, CPU; shard runs with loader_workers {args.workers}; resume from the checkpoint at step {at}")
        url = str(work / "fashion")
        t = time.perf_counter()
        if cli_main(["data", "convert", "fashion_mnist", url]) != 0:
            raise SystemExit("conversion failed")
        say(f"`raysweep data convert fashion_mnist {url}`: {time.perf_counter() - t:.1f} s")
        memory_data = dict(raw["data"])
        shard_data = {**raw["data"], "dataset": "shards", "url": url, "loader_workers": args.workers}

        def cfg(data: dict[str, Any]) -> TrialConfig:
            return trial(raw, data, rung=args.rung, epochs=args.epochs, lr=lr, every_steps=at)

        memory = train(cfg(memory_data))
        say(f"memory run: {memory['seconds']:.0f} s")
        shards = train(cfg(shard_data))
        say(f"shards run: {shards['seconds']:.0f} s")
        state = shards["states"].get(at)
        if state is None:
            raise SystemExit(f"no checkpoint at step {at} (checkpoints at {sorted(shards['states'])})")
        resumed = train(cfg(shard_data), resume=state)
        say(f"resumed run (from step {at}, read position {state['data_position']}): {resumed['seconds']:.0f} s")

        want = memory["losses"]
        rows = [("memory (fashion_mnist)", memory, want, 0), (f"shards, {args.workers} workers", shards, want, 0),
                (f"shards resumed at step {at}", resumed, want[at:], at)]
        say()
        say(f"{'run':<28} {'steps':>5} {'equal losses':>13} {'max |diff|':>10}  {'order digest':<14} "
            f"{'val loss':>18}  first/last loss")
        result: dict[str, Any] = {"rung": args.rung, "epochs": args.epochs, "steps": steps, "lr": lr,
                                  "resume_at": at, "workers": args.workers, "runs": {}}
        ok = True
        for name, run, reference, first in rows:
            equal, diff = compare(run["losses"], reference)
            out = run["out"]
            digest = f"{int(out[M.DATA_DIGEST]):012x}"
            same = (equal == len(reference) and out[M.DATA_DIGEST] == memory["out"][M.DATA_DIGEST]
                    and out[M.VAL_LOSS] == memory["out"][M.VAL_LOSS])
            ok &= same
            losses = run["losses"]
            say(f"{name:<28} {len(losses):>5} {equal:>6}/{len(reference):<6} {diff:>10.3g}  {digest:<14} "
                f"{out[M.VAL_LOSS]!r:>18}  {losses[0]:.6f} (step {first + 1}) / {losses[-1]:.6f}")
            result["runs"][name] = {"steps": len(losses), "equal": equal, "max_abs_diff": diff, "digest": digest,
                                    "val_loss": out[M.VAL_LOSS], "seconds": run["seconds"], "losses": losses}
        say()
        say("bit-identical: every per-step loss, the data-order digest and the validation loss are equal"
            if ok else "NOT bit-identical: see the rows above")
        result["bit_identical"] = ok
        args.out.write_text("\n".join(lines) + "\n")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
