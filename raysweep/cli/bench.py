"""`raysweep bench NAME ...`: benchmarks that need no cluster; each parses its own arguments (and --help)."""

from __future__ import annotations

from collections.abc import Callable


def _bench_searcher(argv: list[str]) -> int:
    from raysweep.bench.replay import main as bench_main

    return bench_main(argv)


def _bench_curves(argv: list[str]) -> int:
    from raysweep.bench.curves import main as curves_main

    return curves_main(argv)


# `raysweep bench NAME ...`: each benchmark parses its own arguments (and --help)
BENCHES: dict[str, Callable[[list[str]], int]] = {"searcher": _bench_searcher, "curves": _bench_curves}
