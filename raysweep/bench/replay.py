"""`raysweep bench searcher`: replay LR searchers against a finished results table.

The command line only: the engine is `raysweep.bench.engine`, the scores `raysweep.bench.scores`,
the text `raysweep.bench.report`. The score of a searcher is how many trials it spent per cell and
how often it settled on the table's best LR; on a table with curves the peers (Tune's schedulers,
Optuna's pruners, NePS's PriorBand: `raysweep.bench.peers`) are replayed beside them, and every method's FLOPs per cell
(in full trials) can be drawn against its regret (`--figure`).

Example:
    raysweep bench searcher --table results.csv --json bench.json --concurrency 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raysweep.bench import priorband
from raysweep.bench.engine import ALL, VARIANTS, run_replay, variants_for
from raysweep.bench.peers import PEERS
from raysweep.bench.report import format_table
from raysweep.bench.table import load_table
from raysweep.config import LrSpec, SearchSpec
from raysweep.search import SEARCHERS

__all__ = ["ALL", "format_table", "main", "run_replay"]


def main(argv: list[str] | None = None) -> int:
    """`raysweep bench searcher`; bad input raises `SpecError` for the CLI to print."""
    parser = argparse.ArgumentParser(
        prog="raysweep bench searcher",
        description="Replay LR searchers against a results table (CSV) and score trials per cell "
        "against how often each settles on the table's best LR.",
        epilog="Columns: trials/cell; hit rate (share of cells settled on the table's best LR, by mean "
        "loss over seeds); hit~noise (also counting cells settled on an LR whose loss the seeds cannot "
        "tell from the best's: a paired t-test over the seed column at 95%, given at least 5 seeds); mean and max regret "
        "((loss - best) / best); flops/cell (FLOPs per settled cell in full trials of that cell: a trial "
        "stopped at fraction f of its budget counts f); total flops; makespan (replayed, in core hours when the table has them); "
        "misses (cells settled off the best in some repetition); diverged (cells settled on a diverged run). "
        "Below the table: the best LR per cell, with the cells whose best rises above a predecessor's "
        "(where the monotone prior fails) marked, and each of monotone's misses with its gap and "
        "standard error.",
    )
    parser.add_argument(
        "--table",
        required=True,
        metavar="CSV",
        help="results with columns model,epochs,lr,val_loss (optional: model_params,seed,"
        "flops,core_hours); one row per trial; empty/inf val_loss = diverged",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the full result as JSON to OUT")
    parser.add_argument("--figure", metavar="PNG",
                        help="also write the regret-against-FLOPs figure (every method a point) to PNG")
    parser.add_argument(
        "--peers",
        default="auto",
        metavar="A,B",
        help=f"peers to replay beside the searchers: some of {','.join(PEERS)}, `all`, `none`, or `auto` "
        "(the default: all when the table has curves, else none)",
    )
    parser.add_argument(
        "--variants",
        default="auto",
        metavar="A,B",
        help=f"raysweep's searchers with its options on, replayed beside the others: some of {','.join(VARIANTS)} "
        "(monotone+es: search.early_stop, each trial stopping where the table's curve says; warm: "
        "search.warm_start from --warm-start), `all`, `none`, or `auto` (the default: those the table "
        "and --warm-start allow)",
    )
    parser.add_argument("--early-stop-margin", default="auto", metavar="M",
                        help="search.early_stop's margin for the +es variants: `auto` (the default) or a "
                        "relative margin >= 0")
    parser.add_argument("--warm-start", metavar="CSV",
                        help="an earlier study's results table: its LR trend warm-starts the `warm` variants")
    parser.add_argument(
        "--concurrency", type=int, default=2, metavar="N", help="trials in flight (default 2)"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=20,
        metavar="N",
        help="replays of each randomised searcher (default 20)",
    )
    parser.add_argument(
        "--sample-seeds",
        action="store_true",
        help="draw one seed per run and repetition instead of the mean over seeds",
    )
    parser.add_argument(
        "--searchers",
        default=",".join(ALL),
        metavar="A,B",
        help=f"comma-separated searchers (default {','.join(ALL)})",
    )
    parser.add_argument("--seed", type=int, default=SearchSpec.seed,
                        help="seeds tpe, random and seed sampling (default %(default)s)")
    parser.add_argument("--slowness", type=int, default=SearchSpec.slowness,
                        help="prior's steps below the bound (default %(default)s)")
    parser.add_argument("--tie-tolerance", type=float, default=SearchSpec.tie_tolerance,
                        help="relative loss tie (default %(default)g)")
    parser.add_argument(
        "--trials-per-cell",
        type=int,
        default=None,
        help="tpe/random budget per cell (default: monotone's mean, rounded up)",
    )
    parser.add_argument(
        "--start-lr",
        type=float,
        default=LrSpec.base,
        help="first cell's starting LR, snapped to the table's grid (default %(default)g)",
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.searchers.split(",") if s.strip()]
    unknown = [s for s in names if s not in SEARCHERS and s not in PEERS]
    if unknown:
        parser.error(f"unknown searcher(s) {unknown}; expected some of {sorted(SEARCHERS) + sorted(PEERS)}")
    if args.peers == "auto":
        peers = list(PEERS) if load_table(args.table).has_curves else []
    elif args.peers in ("all", "none"):
        peers = list(PEERS) if args.peers == "all" else []
    else:
        peers = [s.strip() for s in args.peers.split(",") if s.strip()]
        bad = [s for s in peers if s not in PEERS]
        if bad:
            parser.error(f"unknown peer(s) {bad}; expected some of {list(PEERS)}, all, none or auto")
        if any(PEERS[p].library == "neps" for p in peers) and not priorband.available():
            parser.error(f"--peers: the PriorBand peers need NePS's environment at {priorband.neps_python()}: "
                         f"build it with `make neps-env` or set {priorband.ENV}")
    if args.peers in ("auto", "all") and not priorband.available():
        skipped = [p for p in peers if PEERS[p].library == "neps"]
        peers = [p for p in peers if p not in skipped]
        if skipped:
            print(f"raysweep: {', '.join(skipped)} skipped: NePS's environment ({priorband.neps_python()}) is not "
                  "built; `make neps-env` builds it")
    allowed = variants_for(curves=load_table(args.table).has_curves, warm=args.warm_start is not None)
    if args.variants == "auto":
        variants = allowed
    elif args.variants in ("all", "none"):
        variants = list(VARIANTS) if args.variants == "all" else []
    else:
        variants = [s.strip() for s in args.variants.split(",") if s.strip()]
        bad = [s for s in variants if s not in VARIANTS]
        if bad:
            parser.error(f"unknown variant(s) {bad}; expected some of {list(VARIANTS)}, all, none or auto")
    if any(VARIANTS[v][2] for v in variants) and args.warm_start is None:
        parser.error("the warm variants need --warm-start CSV (an earlier study's results table)")
    margin: str | float = args.early_stop_margin
    if margin != "auto":
        try:
            margin = float(margin)
        except ValueError:
            parser.error(f"--early-stop-margin: expected `auto` or a number >= 0, got {args.early_stop_margin!r}")
        if not margin >= 0:
            parser.error(f"--early-stop-margin: expected `auto` or a number >= 0, got {args.early_stop_margin!r}")
    names += [v for v in variants if v not in names]
    names += [p for p in peers if p not in names]
    if args.concurrency < 1 or args.repetitions < 1:
        parser.error("--concurrency and --repetitions must be >= 1")
    result = run_replay(
        args.table,
        searchers=names,
        repetitions=args.repetitions,
        concurrency=args.concurrency,
        seed=args.seed,
        sample_seeds=args.sample_seeds,
        slowness=args.slowness,
        tie_tolerance=args.tie_tolerance,
        trials_per_cell=args.trials_per_cell,
        start_lr=args.start_lr,
        early_stop=margin,
        warm_start=args.warm_start,
    )
    print(format_table(result))
    if args.figure:
        from raysweep.bench.pareto import plot_pareto

        front = plot_pareto(result, Path(args.figure))
        print(f"wrote {args.figure} (Pareto front: {', '.join(front)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
