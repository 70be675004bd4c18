"""Resume in a 1,000,000-example epoch, each resume in a fresh process, as a restarted trial does.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/data_resume.py [--repeats 3] [--examples 1000000]

`data_throughput.py` section 4 times a resume inside one long-lived process; a trial that resumes
after a kill is a new process (fresh allocations, nothing imported, no shard cached), so this
script starts one per measurement. The dataset is section 4's: Fashion-MNIST's 60k repeated to
1,010,000 28x28 examples, written as IDX files and converted by `raysweep data convert`, 12 shards
of 64 MiB on local disk, val_fraction such that the training split is exactly 1,000,000 (15,625
steps at batch 64). Each row: seconds from `load_splits` to the first batch at 10% or 90% of epoch 0
(`batches(start=step)`), cold (page cache dropped) or warm, global order (`shard_window: 0`, every
shard needed at once) or a one-shard window, 0 or 2 loader workers; median and range over the
repeats, and whether every resumed batch held the labels the order function puts there.

`--source s3` reads the same shards from moto's S3 server on 127.0.0.1 instead (uploaded there once;
`tests/object_stores.start_moto`, reached through AWS_ENDPOINT_URL_S3 as production reaches a
bucket); a server holds its objects in memory, so there is no cold row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import data_throughput as dt

CHILD = """
import sys, json, numpy as np
sys.path.insert(0, {bench!r})
import data_throughput as dt
from pathlib import Path
from raysweep.config import DataSpec
labels = np.load({labels!r})
if {cold}:
    dt.drop_page_cache(Path({url!r}))
spec = DataSpec(dataset="shards", url={url!r}, val_fraction={val!r}, loader_workers={workers}, shard_window={window})
print(json.dumps(dt.resume_time(spec, fraction={fraction}, labels=labels)))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", choices=("local", "s3"), default="local")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/data_resume[_s3].txt")
    args = ap.parse_args(argv)
    args.out = args.out or Path(__file__).with_name("data_resume.txt" if args.source == "local" else "data_resume_s3.txt")
    import json

    from raysweep.data import sources

    lines = [(f"data_resume: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
             f"load average at the start {' '.join(f'{x:.1f}' for x in os.getloadavg())}")]
    with tempfile.TemporaryDirectory(prefix="raysweep-resume-") as tmp:
        work = Path(tmp)
        pool = args.examples + args.examples // 100
        base = sources._read_fashion_mnist(None)
        labels = np.resize(base.labels, pool)
        dt.write_idx(work / "idx", np.resize(base.images, (pool, 28, 28)), labels)
        del base
        np.save(work / "labels.npy", labels)
        big = work / "big"
        seconds = dt.convert("fashion_mnist", str(big), "--path", str(work / "idx"))
        shutil.rmtree(work / "idx")
        files = [p for p in big.iterdir() if p.name.startswith("train-")]
        lines.append(f"{args.examples:,} training examples ({args.examples // dt.BATCH:,} steps at batch {dt.BATCH}) in "
                     f"{len(files)} shards, {sum(p.stat().st_size for p in files) / 2**20:,.0f} MiB, converted in "
                     f"{seconds:.1f} s; {args.repeats} repeats, each in a fresh process")
        moto, url, caches = None, str(big), ("cold", "warm")
        if args.source == "s3":
            sys.path.insert(0, str(Path(__file__).parent.parent))
            import fsspec

            from tests.object_stores import BUCKET, start_moto

            moto, endpoint = start_moto(auth=False)
            dt.s3_environment(endpoint)
            fs = fsspec.filesystem("s3")
            fs.mkdir(BUCKET)
            url = f"s3://{BUCKET}/big"
            t0 = time.perf_counter()
            fs.put(str(big) + "/", url + "/", recursive=True)
            lines.append(f"S3: moto server on 127.0.0.1, the shards uploaded in {time.perf_counter() - t0:.1f} s")
            caches = ("server",)
        lines.append(f"{'order':<15}{'workers':>8} {'cache':>6} {'position':>9} {'median s':>9} {'range':>12}  batch")
        print("\n".join(lines), flush=True)
        medians = []
        for order, window in (("global", 0), ("window 1 shard", 1)):
            for workers in (0, 2):
                for fraction in (0.1, 0.9):
                    for cache in caches:
                        got = []
                        for _ in range(args.repeats):
                            code = CHILD.format(bench=str(Path(__file__).parent), labels=str(work / "labels.npy"),
                                                cold=cache == "cold", url=url, val=(pool - args.examples) / pool,
                                                workers=workers, window=window, fraction=fraction)
                            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                                 text=True).stdout
                            got.append(json.loads(out.strip().splitlines()[-1]))
                        secs = [g["seconds"] for g in got]
                        ok = "as ordered" if all(g["checked"] for g in got) else "WRONG"
                        line = (f"{order:<15}{workers:>8} {cache:>6} {fraction:>9.0%} {statistics.median(secs):>9.2f} "
                                f"{min(secs):>5.2f}-{max(secs):<6.2f}  {ok}")
                        lines.append(line)
                        medians.append(statistics.median(secs) if ok == "as ordered" else float("inf"))
                        print(line, flush=True)
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)
    worst = max(medians)
    lines.append(f"goal: resume <= {dt.GOAL_RESUME_S:g} s wherever the position is: "
                 f"{'met' if worst <= dt.GOAL_RESUME_S else 'NOT met'} (worst median {worst:.2f} s); "
                 f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
