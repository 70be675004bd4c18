"""Input throughput of raysweep's shard loader against what the training step consumes (issue 15).

    PYTHONPATH=$PWD nice .venv/bin/python benchmarks/data_throughput.py [--quick] [--json out.json]

Everything is measured through raysweep's own code: datasets are written by `raysweep data convert`
and read by `load_splits(DataSpec(dataset="shards", url=...)).train.batches(64, ...)`, the call the
training loop makes, with its decoding worker processes (`data.loader_workers`: 0 and 2 are both timed; the default `auto` is 0 for pixels, 2 for images) and their
prefetch. The S3 rows read from moto's S3 server on 127.0.0.1 (`tests/object_stores.start_moto`),
reached as production reaches a bucket: `AWS_ENDPOINT_URL_S3` and the keys in the environment.

1. Input: per dataset and source, the time to the first batch (from `load_splits`, index read and
   shards fetched included; the in-memory rows clear their cache, so they load the dataset too) and
   the images/s of the batches after it, for
   (a) the demo's 28x28 images: Fashion-MNIST from Debian's package, padded to 32 as in training;
   (b) 224 px JPEGs: Fashion-MNIST images upscaled to 224x224 (bicubic) and coloured (a tint per
       class, a smooth random colour field behind the garment, pixel noise), JPEG quality 90, written
       as an image folder and converted (`raysweep data convert FOLDER URL`). Nothing is downloaded.
2. Consumption: images/s of the demo's training step (forward, label-smoothed cross-entropy,
   backward, AGC 0.16, SGD with Nesterov momentum; search_spaces/demo.yaml) at batch 64, one torch
   thread as a trial runs (`cpus_per_worker: 1`), for nfnet_t0, nfnet_t3 (the largest rung the CPU
   studies train) and nfnet_t6 (the largest rung of the `nfnet_cpu` ladder), at 32x32x1 and 224x224x3.
3. Starvation: N training steps of nfnet_t0 on Fashion-MNIST, the loop's own step (the data-order
   digest included), fed by the in-memory loader and by the shard loaders, in the same order (seed 0,
   epoch 0). The repeats interleave the loaders (rotating which goes first); each repeat gives the
   ratio shard step time / memory step time; the table gives their median and range.
4. Resume: 1,010,000 28x28 examples (Fashion-MNIST's 60k repeated, written as IDX files and
   converted with `raysweep data convert fashion_mnist DIR --path IDX_DIR`; val_fraction chosen so
   that the training split is exactly 1,000,000, 15,625 steps at batch 64) in 64 MiB shards on local
   disk. Time from `load_splits` to the first batch at step 10% and 90% of the epoch (`batches(start=
   step)`, the loop's seek), cold (every shard's page cache dropped with posix_fadvise DONTNEED after
   fsync) and warm, for the global order (`shard_window: 0`) and a window of one shard; each
   resumed batch's labels are checked against the order function. The shards are deleted afterwards.

On a shared machine absolute rates move with the load (printed with the table); the starvation
ratios are paired per repeat for that reason. `--quick` shrinks everything (a smoke test only).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/object_stores.py starts the S3 server
    sys.path.insert(0, str(ROOT))

from raysweep.cli import main as cli_main
from raysweep.config import DataSpec
from raysweep.config.load import load_spec
from raysweep.data import load_splits, sources, store
from raysweep.data.imagesets import batch_share
from raysweep.models import build_model, classifier_param_names, no_weight_decay_names
from raysweep.train.loop import _chain
from raysweep.train.recipe import adaptive_grad_clip, make_optimizer, param_groups

BATCH = 64
GOAL_FIRST_S = 2.0
GOAL_RESUME_S = 2.0
GOAL_STARVE = 1.05
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


# Measuring ------------------------------------------------------------------------------------


def read_rate(spec: DataSpec, *, max_images: int, seconds: float, clear: Callable[[], None] | None = None,
              ) -> dict[str, float]:
    """Time to the first batch of epoch 0 (from `load_splits`) and images/s of the batches after it."""
    if clear is not None:
        clear()
    t0 = time.perf_counter()
    train = load_splits(spec).train
    batches = train.batches(BATCH, seed=0, epoch=0)
    next(batches)
    first = time.perf_counter() - t0
    n, epoch, t1 = 0, 0, time.perf_counter()
    while n < max_images and time.perf_counter() - t1 < seconds:
        try:
            n += len(next(batches)[1])
        except StopIteration:  # a small set: on into the next epoch, as training goes
            epoch += 1
            batches = train.batches(BATCH, seed=0, epoch=epoch)
    elapsed = time.perf_counter() - t1
    batches.close()  # shuts the loader's workers down
    return {"first_s": first, "images_s": n / elapsed if elapsed else float("nan"), "images": n}


def demo_optim() -> Any:
    return load_spec(ROOT / "search_spaces" / "demo.yaml").optim


def make_step(rung: str, *, in_chans: int, size: int, optim: Any) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """The training loop's step for a fresh `rung` (seed 0): forward, loss, backward, AGC, optimiser."""
    torch.manual_seed(0)
    model = build_model("nfnet_cpu", rung, num_classes=10, in_chans=in_chans, image_size=size)
    groups, agc = param_groups(model, weight_decay=optim.weight_decay, head_names=classifier_param_names(model),
                               no_decay_names=no_weight_decay_names(model))
    opt = make_optimizer(groups, lr=0.1, optim=optim)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        model.train()
        loss = F.cross_entropy(model(x), y, label_smoothing=optim.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if optim.agc_clip > 0:
            adaptive_grad_clip(agc, clip=optim.agc_clip, eps=optim.agc_eps)
        opt.step()
        return float(loss.detach())

    return step


def step_rate(rung: str, *, in_chans: int, size: int, optim: Any, seconds: float, min_steps: int) -> dict[str, float]:
    """Images/s the training step consumes (one untimed step first)."""
    step = make_step(rung, in_chans=in_chans, size=size, optim=optim)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(BATCH, in_chans, size, size, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    step(x, y)
    n, t = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - t < seconds:
        step(x, y)
        n += 1
    elapsed = time.perf_counter() - t
    return {"images_s": n * BATCH / elapsed, "step_ms": 1000 * elapsed / n, "steps": n}


def timed_steps(spec: DataSpec, *, steps: int, warmup: int, optim: Any) -> tuple[float, float, float]:
    """Per training step of nfnet_t0 fed by `spec`'s loader (after `warmup` steps), as the loop runs it
    (next batch, data-order digest, step): wall seconds, this process's CPU seconds, and the loader
    workers' CPU seconds (their whole life, prefetch included, over the steps they fed)."""
    children = os.times()
    train = load_splits(spec).train
    step = make_step("nfnet_t0", in_chans=train.in_chans, size=train.image_size, optim=optim)
    batches = train.batches(BATCH, seed=0, epoch=0)
    digest = ""
    for _ in range(warmup):
        x, y = next(batches)
        digest = _chain(digest, x, y)
        step(x, y)
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        x, y = next(batches)
        digest = _chain(digest, x, y)
        step(x, y)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    batches.close()  # the workers exit and are joined: their CPU time is counted in os.times()
    gc.collect()
    now = os.times()
    workers = now.children_user + now.children_system - children.children_user - children.children_system
    return elapsed / steps, cpu / steps, workers / (steps + warmup)


def resume_time(spec: DataSpec, *, fraction: float, labels: np.ndarray) -> dict[str, float]:
    """Seconds from `load_splits` to the first batch at `fraction` of epoch 0, and whether that batch
    holds the labels the order function puts there."""
    t0 = time.perf_counter()
    train = load_splits(spec).train
    at = int(fraction * (len(train) // BATCH))
    batches = train.batches(BATCH, seed=0, epoch=0, start=at)
    _, y = next(batches)
    seconds = time.perf_counter() - t0
    batches.close()
    positions = batch_share(train.order(seed=0, epoch=0), at, BATCH, rank=0, world=1)
    want = labels[train.ids[positions].numpy()]  # type: ignore[attr-defined]
    return {"seconds": seconds, "step": at, "checked": bool(np.array_equal(y.numpy(), want))}


def drop_page_cache(folder: Path) -> None:
    """Ask the kernel to forget the cached pages of every file in `folder` (no root needed)."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# Data -----------------------------------------------------------------------------------------


def write_jpegs(folder: Path, images: np.ndarray, labels: np.ndarray, *, size: int = 224, seed: int = 0) -> int:
    """Fashion-MNIST images upscaled and coloured into `folder/<class>/<i>.jpg`; the bytes written."""
    rng = np.random.default_rng(seed)
    tints = rng.uniform(0.3, 1.0, (10, 3))
    total = 0
    for c in FASHION_CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        garment = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
        field = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
        background = np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BILINEAR), np.float32)
        mask = garment[..., None]
        rgb = mask * 255 * tints[label] + (1 - mask) * background + rng.normal(0, 8, (size, size, 3))
        path = folder / FASHION_CLASSES[label] / f"{i:05d}.jpg"
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)
        total += path.stat().st_size
    return total


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A Fashion-MNIST-format folder (IDX files) holding `images`, and Fashion-MNIST's own test files."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(images)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(b"\0\0\x08\x03" + np.array([n, 28, 28], ">i4").tobytes())
        f.write(np.ascontiguousarray(images).tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(b"\0\0\x08\x01" + np.array([n], ">i4").tobytes() + labels.astype(np.uint8).tobytes())
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(sources.FASHION_MNIST_DIR / name, folder / name)


def convert(src: str, url: str, *extra: str) -> float:
    t = time.perf_counter()
    if cli_main(["data", "convert", src, url, *extra]) != 0:
        raise SystemExit(f"raysweep data convert {src} {url} failed")
    return time.perf_counter() - t


def clear_memory_cache() -> None:
    sources._fitted.cache_clear()
    sources._read_fashion_mnist.cache_clear()


def s3_environment(endpoint: str) -> None:
    """Point this process (and the loader workers it forks) at the S3 server, as a user would."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update({"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "benchmark",
                       "AWS_SECRET_ACCESS_KEY": "benchmark-secret", "AWS_DEFAULT_REGION": "us-east-1"})
    store.forget_clients()


# The table (pure: tests/bench/test_data_throughput_script.py) -----------------------------------


def spread(ratios: list[float]) -> dict[str, float]:
    """Median, lowest and highest of paired ratios."""
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios), "n": len(ratios)}


def verdicts(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, the number that decides it) for the three goals of issue 15."""
    first = max((row for row in r["input"] if "shards" in row["source"]), key=lambda row: row["first_s"])
    out = [("time to first batch <= 2 s (shard rows)", first["first_s"] <= GOAL_FIRST_S,
            f"worst {first['first_s']:.2f} s ({first['images']}, {first['source']}, {first['workers']} workers)")]
    if r.get("resume"):
        worst = max(r["resume"], key=lambda row: row["seconds"])
        label = f"{worst['order']}, {worst['workers']} workers, {worst['cache']}, at {worst['fraction']:.0%}"
        out.append(("resume <= 2 s wherever the position is", worst["seconds"] <= GOAL_RESUME_S,
                    f"worst {worst['seconds']:.2f} s ({label})"))
        windowed = [row["seconds"] for row in r["resume"] if row["order"] != "global"]
        if windowed:
            out.append(("  the same with a shard window", max(windowed) <= GOAL_RESUME_S,
                        f"worst {max(windowed):.2f} s"))
    ratios = r.get("starvation", {}).get("ratios", {})
    control = next((s for name, s in ratios.items() if "control" in name), None)
    noise = (f"; noise floor, memory against memory: median {control['median']:.3f}, range "
             f"{control['low']:.3f}-{control['high']:.3f}") if control else ""
    for name, s in ratios.items():
        if s is control:
            continue
        out.append((f"step time within 5% of memory ({name})", s["median"] <= GOAL_STARVE,
                    f"median ratio {s['median']:.3f} (range {s['low']:.3f}-{s['high']:.3f}, {s['n']} repeats){noise}"))
    return out


def render(r: dict[str, Any]) -> list[str]:
    """The printed tables from the results dict (what --json writes)."""
    load = f"load average at the start: {r['load_start']}, at the end: {r['load_end']} (1, 5, 15 min); {r['mode']}"
    lines = [f"data_throughput: {r['machine']}; {r['when']}", load, ""]
    lines += [d for d in r["datasets"]] + [""]
    lines.append("Training step consumed (batch 64, demo recipe, 1 torch thread):")
    lines.append(f"  {'images':<10} {'rung':<9} {'img/s':>9} {'ms/step':>9}")
    for row in r["step"]:
        lines.append(f"  {row['images']:<10} {row['rung']:<9} {row['images_s']:>9.1f} {row['step_ms']:>9.0f}")
    lines.append("")
    rungs = sorted({row["rung"] for row in r["step"]}, key=lambda s: (len(s), s))
    lines.append("Input (batch 64 from epoch 0; median of repeats) and input / step consumption:")
    lines.append(f"  {'images':<10} {'source':<22} {'workers':>7} {'first batch':>11} {'input img/s':>11}  "
                 + " ".join(f"{'/' + rung:>9}" for rung in rungs))
    consume = {(row["images"], row["rung"]): row["images_s"] for row in r["step"]}
    for row in r["input"]:
        ratios = [f"{row['images_s'] / consume[row['images'], rung]:>8.0f}x" if (row["images"], rung) in consume
                  else f"{'-':>9}" for rung in rungs]
        lines.append(f"  {row['images']:<10} {row['source']:<22} {row['workers']:>7} {row['first_s']:>10.2f}s "
                     f"{row['images_s']:>11,.0f}  " + " ".join(ratios))
    lines.append("")
    s = r.get("starvation")
    if s:
        lines.append(f"Starvation: {s['steps']} steps of nfnet_t0 on Fashion-MNIST (after {s['warmup']}), "
                     f"{s['repeats']} interleaved repeats, ratio = step time / in-memory step time of the same repeat:")
        lines.append(f"  {'loader':<26} {'ms/step':>8} {'ratio':>7} {'range':>13} {'fastest':>8}   "
                     f"{'CPU ms/step':>11} {'CPU ratio':>9} {'range':>13} {'+workers':>9}")
        for name, ms in s["median_ms"].items():
            q, c = s["ratios"].get(name), s.get("cpu_ratios", {}).get(name)
            ratio = (f"{q['median']:>7.3f} {q['low']:>6.3f}-{q['high']:<6.3f} {s['best_ratio'][name]:>8.3f}" if q
                     else f"{'1':>7} {'':>13} {'1':>8}")
            own = (f"{s['cpu_ms'][name]:>11.1f} " + (f"{c['median']:>9.3f} {c['low']:>6.3f}-{c['high']:<6.3f}" if c
                                                      else f"{'1':>9}")) if "cpu_ms" in s else ""
            both = f" {s['total_cpu_ms'][name]:>9.1f}" if "total_cpu_ms" in s else ""
            lines.append(f"  {name:<26} {ms:>8.1f} {ratio}   {own}{both}".rstrip())
        lines.append("  (ms/step: median wall time per step; ratio: median over repeats of the wall time over the "
                     "in-memory run's")
        lines.append("   of the same repeat; fastest: fastest repeat over memory's fastest; CPU: this process's "
                     "CPU time, the")
        lines.append("   loader workers' own excluded: what the step's process spends, whatever the load; +workers: "
                     "that CPU")
        lines.append("   plus the loader workers', ms per step; the control row, memory against memory, shows "
                     "the noise)")
        lines.append("")
    if r.get("resume"):
        m = r["resume_data"]
        lines.append(f"Resume in a {m['train']:,}-example epoch ({m['steps']:,} steps; {m['shards']} shards, "
                     f"{m['bytes'] / 2**20:,.0f} MiB, local disk): load_splits to the first batch at the position")
        lines.append(f"  {'order':<14} {'workers':>7} {'cache':<5} {'position':>8} {'step':>7} {'seconds':>8}  batch")
        for row in r["resume"]:
            lines.append(f"  {row['order']:<14} {row['workers']:>7} {row['cache']:<5} {row['fraction']:>8.0%} "
                         f"{row['step']:>7} {row['seconds']:>8.2f}  {'as ordered' if row['checked'] else 'WRONG'}")
        lines.append("")
    lines.append("Goals:")
    for goal, met, why in verdicts(r):
        lines.append(f"  {'met    ' if met else 'NOT met'}  {goal}: {why}")
    lines.append(f"\ntotal {r['seconds']:.0f} s")
    return lines


# The run --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke test: tiny sizes, numbers meaningless")
    ap.add_argument("--jpegs", type=int, default=3000, help="224 px JPEGs to synthesise")
    ap.add_argument("--examples", type=int, default=1_000_000, help="training examples of the resume dataset")
    ap.add_argument("--repeats", type=int, default=10, help="interleaved repeats of the starvation timing")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per starvation repeat")
    ap.add_argument("--rungs", nargs="+", default=["nfnet_t0", "nfnet_t3", "nfnet_t6"])
    ap.add_argument("--no-s3", action="store_true", help="skip the moto S3 rows")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("data_throughput.txt"))
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--render", type=Path, default=None, help="print the tables of a --json file and exit")
    args = ap.parse_args(argv)
    if args.render:
        print("\n".join(render(json.loads(args.render.read_text()))))
        return 0
    if args.quick:
        args.jpegs, args.examples, args.repeats, args.steps, args.rungs = 200, 20_000, 1, 4, ["nfnet_t0"]
    seconds = 0.3 if args.quick else 2.0  # per input measurement
    repeats = 1 if args.quick else 2
    torch.set_num_threads(1)  # as a trial (resources.cpus_per_worker: 1)
    started = time.perf_counter()
    r: dict[str, Any] = {
        "machine": f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, 1 torch thread",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "mode": "QUICK (smoke test: the numbers mean nothing)" if args.quick else "full run",
        "datasets": [], "input": [], "step": [], "resume": [],
    }
    work = Path(tempfile.mkdtemp(prefix="raysweep-throughput-", dir="/tmp"))
    moto = None
    try:
        s3 = not args.no_s3
        if s3:
            from tests.object_stores import BUCKET, start_moto

            moto, endpoint = start_moto(auth=False)
            s3_environment(endpoint)
            store.filesystem("s3").mkdir(BUCKET)
        fashion = sources._read_fashion_mnist(None)

        # (a) 28x28 Fashion-MNIST; (b) 224 px JPEGs
        local28, local224 = str(work / "fashion"), str(work / "jpeg224_shards")
        t28 = convert("fashion_mnist", local28)
        n_jpeg = args.jpegs
        t = time.perf_counter()
        jpeg_bytes = write_jpegs(work / "jpeg224", fashion.images[:n_jpeg], fashion.labels[:n_jpeg])
        t_jpeg = time.perf_counter() - t
        t224 = convert(str(work / "jpeg224"), local224)
        r["datasets"] += [
            (f"28x28: Fashion-MNIST (60,000 train) from {sources.FASHION_MNIST_DIR}, padded to 32 as in training; "
            f"`raysweep data convert fashion_mnist` {t28:.1f} s"),
            (f"224 px: {n_jpeg:,} JPEGs synthesised in {t_jpeg:.0f} s (Fashion-MNIST's first images upscaled 28->224 "
            f"bicubic, a tint per class, a smooth random colour field behind, pixel noise sd 8, quality 90; "
            f"mean {jpeg_bytes / n_jpeg / 1024:.1f} KiB), written as an image folder and converted in {t224:.1f} s"),
        ]
        s3_28 = s3_224 = ""
        if s3:
            s3_28, s3_224 = f"s3://{BUCKET}/fashion", f"s3://{BUCKET}/jpeg224"
            r["datasets"].append(f"S3: moto server on 127.0.0.1 (AWS_ENDPOINT_URL_S3); converted there in "
                                 f"{convert('fashion_mnist', s3_28):.1f} s and "
                                 f"{convert(str(work / 'jpeg224'), s3_224):.1f} s")

        # 1. input
        big224 = {"image_size": 224}
        cases: list[tuple[str, str, int, DataSpec, Callable[[], None] | None]] = [
            ("28x28", "memory (fashion_mnist)", 0, DataSpec(dataset="fashion_mnist"), clear_memory_cache)]
        for workers in (0, 2):
            cases.append(("28x28", "local shards", workers, DataSpec(dataset="shards", url=local28,
                                                                     loader_workers=workers), None))
            if s3:
                cases.append(("28x28", "S3 shards (moto)", workers, DataSpec(dataset="shards", url=s3_28,
                                                                             loader_workers=workers), None))
        cases.append(("224px", "image folder (files)", 0, DataSpec(dataset="image_folder", path=str(work / "jpeg224"),
                                                                   **big224), sources.scan_folder.cache_clear))
        for workers in (0, 2):
            cases.append(("224px", "local shards", workers, DataSpec(dataset="shards", url=local224,
                                                                     loader_workers=workers, **big224), None))
            if s3:
                cases.append(("224px", "S3 shards (moto)", workers, DataSpec(dataset="shards", url=s3_224,
                                                                             loader_workers=workers, **big224), None))
        measured: dict[int, list[dict[str, float]]] = {i: [] for i in range(len(cases))}
        for _ in range(repeats):
            for i, (images, _, _, spec, clear) in enumerate(cases):
                cap = 50_000 if images == "28x28" else n_jpeg
                measured[i].append(read_rate(spec, max_images=cap, seconds=seconds, clear=clear))
        for i, (images, source, workers, _, _) in enumerate(cases):
            ms = measured[i]
            r["input"].append({"images": images, "source": source, "workers": workers,
                               "first_s": statistics.median(m["first_s"] for m in ms),
                               "images_s": statistics.median(m["images_s"] for m in ms)})
            print(r["input"][-1], flush=True)

        # 2. consumption
        optim = demo_optim()
        for images, in_chans, size in (("28x28", 1, 32), ("224px", 3, 224)):
            for rung in args.rungs:
                budget = 0.5 if args.quick else 4.0 if size == 32 else 6.0
                row = step_rate(rung, in_chans=in_chans, size=size, optim=optim, seconds=budget,
                                min_steps=1 if args.quick else 3)
                r["step"].append({"images": images, "rung": rung, **row})
                print(r["step"][-1], flush=True)

        # 3. starvation
        loaders = {"memory": DataSpec(dataset="fashion_mnist"),
                   "memory again (control)": DataSpec(dataset="fashion_mnist"),
                   "local shards, 0 workers": DataSpec(dataset="shards", url=local28, loader_workers=0),
                   "local shards, 2 workers": DataSpec(dataset="shards", url=local28, loader_workers=2)}
        if s3:
            loaders["S3 shards, 2 workers"] = DataSpec(dataset="shards", url=s3_28, loader_workers=2)
        names = list(loaders)
        per: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        total: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(args.repeats):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                wall, own, workers = timed_steps(loaders[name], steps=args.steps, warmup=3, optim=optim)
                per[name].append(wall)
                cpu[name].append(own)
                total[name].append(own + workers)
            print({n: round(1000 * v[-1], 1) for n, v in per.items()}, flush=True)
        r["starvation"] = {
            "steps": args.steps, "warmup": 3, "repeats": args.repeats,
            "median_ms": {n: 1000 * statistics.median(v) for n, v in per.items()},
            "ratios": {n: spread([a / b for a, b in zip(per[n], per["memory"])]) for n in names[1:]},
            "best_ratio": {n: min(per[n]) / min(per["memory"]) for n in names[1:]},
            "cpu_ms": {n: 1000 * statistics.median(v) for n, v in cpu.items()},
            "cpu_ratios": {n: spread([a / b for a, b in zip(cpu[n], cpu["memory"])]) for n in names[1:]},
            "total_cpu_ms": {n: 1000 * statistics.median(v) for n, v in total.items()},
            "raw_ms": {n: [1000 * x for x in v] for n, v in per.items()},
            "raw_cpu_ms": {n: [1000 * x for x in v] for n, v in cpu.items()},
        }

        # 4. resume in a 1M-example epoch
        del fashion
        clear_memory_cache()
        pool = args.examples + args.examples // 100
        base = sources._read_fashion_mnist(None)
        idx = work / "idx1m"
        write_idx(idx, np.resize(base.images, (pool, 28, 28)), np.resize(base.labels, pool))
        labels = np.resize(base.labels, pool)
        del base
        clear_memory_cache()
        gc.collect()
        big = work / "big"
        t_big = convert("fashion_mnist", str(big), "--path", str(idx))
        shutil.rmtree(idx)
        clear_memory_cache()
        gc.collect()
        shard_files = [p for p in big.iterdir() if p.name.startswith("train-")]
        val_fraction = (pool - args.examples) / pool
        steps = args.examples // BATCH
        r["resume_data"] = {"train": args.examples, "steps": steps, "shards": len(shard_files),
                            "bytes": sum(p.stat().st_size for p in shard_files), "convert_s": t_big}
        for order, window in (("global", 0), ("window 1 shard", 1)):
            for workers in (2, 0):
                for fraction in (0.1, 0.9):
                    for cache in ("cold", "warm"):
                        if cache == "cold":
                            drop_page_cache(big)
                        spec = DataSpec(dataset="shards", url=str(big), val_fraction=val_fraction,
                                        loader_workers=workers, shard_window=window)
                        row = resume_time(spec, fraction=fraction, labels=labels)
                        r["resume"].append({"order": order, "workers": workers, "cache": cache,
                                            "fraction": fraction, **row})
                        print(r["resume"][-1], flush=True)
                        gc.collect()
        shutil.rmtree(big)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    r["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    r["seconds"] = time.perf_counter() - started
    lines = render(r)
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
