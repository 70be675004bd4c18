"""How fast one training step runs against the machine: the CPU NFNet rungs, eager and with the
`train:` options (torch.compile, bf16 autocast) and channels-last.

    nice .venv/bin/python benchmarks/step_speed.py [--seconds 4] [--out benchmarks/step_speed.txt]

For each rung of `nfnet_cpu` (t0..t3 by default) at batch 64 of 28x28x1 images it times the
training step (forward, cross-entropy, backward, SGD with Nesterov momentum) and prints images per
second, GFLOP/s (the rung's counted training FLOPs per example x images/s) and that rate as a
fraction of the machine's dense fp32 matmul rate, measured here first (a 1024^3 torch.mm). For the
compiled variants it also prints the compile time (what `time/compile_s` records) and the number
of steps after which the compile has paid for itself against eager.

On a shared machine the absolute numbers move with the load (printed with the table): read the
ratios (speed-up against eager, fraction of matmul) and not the absolutes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from raysweep.models import build_model, count_params, flops_per_example
from raysweep.train.loop import compile_seconds

VARIANTS = ("eager", "compile", "channels_last", "bf16", "compile+bf16")


def matmul_gflops(n: int = 1024, seconds: float = 2.0, dtype: torch.dtype = torch.float32) -> float:
    """The dense matmul rate of this machine (and these threads), GFLOP/s: the best of several timings."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)  # warm up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def make_step(model: nn.Module, variant: str) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Any]:
    """The step function for one variant, and the memory format its inputs take."""
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    run = torch.compile(model) if variant.startswith("compile") else model
    bf16 = variant.endswith("bf16")

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with cast:
            loss = F.cross_entropy(run(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, fmt


def batches(batch: int, fmt: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, 1, 28, 28, generator=g).contiguous(memory_format=fmt) for _ in range(4)]
    ys = [torch.randint(0, 10, (batch,), generator=g) for _ in range(4)]
    i = 0
    while True:
        yield xs[i % 4], ys[i % 4]
        i += 1


def time_variant(base: nn.Module, variant: str, *, batch: int, seconds: float, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    step, fmt = make_step(copy.deepcopy(base), variant)
    data = batches(batch, fmt)
    c0 = compile_seconds()
    t = time.perf_counter()
    loss = step(*next(data))  # the first step compiles, for the compiled variants
    first = time.perf_counter() - t
    compiled = compile_seconds() - c0
    for _ in range(warmup):
        loss = step(*next(data))
    n, t, end = 0, time.perf_counter(), time.perf_counter() + seconds
    while time.perf_counter() < end or n < 3:
        loss = step(*next(data))
        n += 1
    elapsed = time.perf_counter() - t
    return {"step_s": elapsed / n, "images_s": n * batch / elapsed, "first_s": first, "compile_s": compiled,
            "steps": n, "loss": float(loss)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rungs", nargs="+", default=["nfnet_t0", "nfnet_t1", "nfnet_t2", "nfnet_t3"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0, help="timing window per rung and variant")
    ap.add_argument("--warmup", type=int, default=2, help="steps after the first, not timed")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("step_speed.txt"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    started = time.perf_counter()
    mm = matmul_gflops()
    mm_bf16 = matmul_gflops(dtype=torch.bfloat16)
    head = [
        (f"step_speed: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; batch {args.batch} of 28x28x1, "
        f"timing window {args.seconds:g} s per cell"),
        f"dense matmul (1024^3 torch.mm): fp32 {mm:.1f} GFLOP/s, bf16 {mm_bf16:.1f} GFLOP/s",
        f"load average at the start: {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f} (1, 5, 15 min)",
        "",
        (f"{'rung':<9} {'params':>8} {'MFLOP/ex':>8} {'variant':<13} {'img/s':>7} {'GFLOP/s':>7} {'% mm':>6} "
        f"{'x eager':>7} {'compile s':>9} {'pays off':>9}"),
    ]
    print("\n".join(head), flush=True)
    rows: list[str] = []
    kw = {"num_classes": 10, "in_chans": 1, "image_size": 28}
    models, eager_s = {}, {}
    for rung in args.rungs:
        torch.manual_seed(0)
        models[rung] = (build_model("nfnet_cpu", rung, **kw), flops_per_example("nfnet_cpu", rung, **kw))
    # variant by variant over every rung: a run cut short still has eager and compile for every rung
    for variant in args.variants:
        for rung in args.rungs:
            base, fpe = models[rung]
            r = time_variant(base, variant, batch=args.batch, seconds=args.seconds, warmup=args.warmup)
            gflops = fpe * r["images_s"] / 1e9
            if variant == "eager":
                eager_s[rung] = r["step_s"]
            e = eager_s.get(rung)
            speedup = e / r["step_s"] if e else float("nan")
            pays = ""
            if r["compile_s"] > 0 and e:
                gain = e - r["step_s"]
                pays = f"{r['compile_s'] / gain:.0f} st" if gain > 0 else "never"
            comp = f"{r['compile_s']:.1f}" if r["compile_s"] > 0 else "-"
            line = (f"{rung:<9} {count_params(base):>8,} {fpe / 1e6:>8.2f} {variant:<13} {r['images_s']:>7.1f} "
                    f"{gflops:>7.3f} {100 * gflops / mm:>5.1f}% {speedup:>6.2f}x {comp:>9} {pays:>9}")
            print(line, flush=True)
            rows.append(line)
            args.out.write_text("\n".join(head + rows + ["", "(still running)"]) + "\n")  # a cut-short run keeps its rows
    load1 = os.getloadavg()
    tail = ["", (f"load average at the end: {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f}; "
                f"{time.perf_counter() - started:.0f} s in all"),
            ("x eager: the step's speed-up over eager fp32 on the same rung; % mm: GFLOP/s as a share of the "
             "fp32 matmul rate; pays off: steps after which the compile time is won back (compile s / the "
             "time a step saves)")]
    print("\n".join(tail))
    args.out.write_text("\n".join(head + rows + tail) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
