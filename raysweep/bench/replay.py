"""`raysweep bench searcher`: replay LR searchers against a finished results table.

Each searcher runs as it would on a cluster (`raysweep.search.simulate`): `concurrency` trials in
flight, each lasting its core hours (else FLOPs) from the table, the earliest finishing first; a
trial's loss is looked up in the table instead of trained. The score of a searcher is how many
trials it spent per cell and how often it settled on the table's best LR.

Example:
    raysweep bench searcher --table results.csv --json bench.json --concurrency 4
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
from collections.abc import Sequence
from typing import Any

from raysweep.bench.table import Table, load_table
from raysweep.records import cell_name
from raysweep.search import SEARCHERS, Outcome, make_searcher
from raysweep.search._study import quiet_optuna
from raysweep.search.simulate import simulate
from raysweep.space import Cell

ALL = ("grid", "monotone", "bracket", "verify", "trend", "tpe", "random")
DETERMINISTIC = {"grid", "monotone", "bracket", "verify", "trend"}  # same trials every repetition
NOISE_LEVEL = 0.95  # a gap inside this t-interval (over seeds) is one the table cannot resolve
MIN_SEEDS = 5  # fewer seeds give no verdict on noise (the t-interval of 2-3 seeds spans almost anything)
TREND_TARGET = 1.6  # trend mode's goal: at most this many trials per cell at monotone's hit rate


def run_replay(
    table_csv: str,
    *,
    searchers: Sequence[str] = ALL,
    repetitions: int = 20,
    concurrency: int = 2,
    seed: int = 0,
    sample_seeds: bool = False,
    slowness: int = 1,
    tie_tolerance: float = 0.0,
    trials_per_cell: int | None = None,
    start_lr: float = 1.6,
) -> dict[str, Any]:
    """Replay each searcher `repetitions` times over the table; a JSON-able summary.

    `result["searchers"][name]` holds, averaged over repetitions: `mean_trials_per_cell`,
    `hit_rate` (share of cells settled on the table's best LR), `hit_rate_within_noise` (also
    counting a cell settled on an LR whose loss the seeds cannot tell from the best's: a paired
    t-test over the `seed` column at 95%), `mean_regret` / `max_regret`
    ((loss - best) / best over cells settled on a finished run), `settled_diverged` (cells settled on
    a diverged or missing run), `total_flops`, `makespan` (simulated time to finish),
    `missing_trials` (runs the table lacks, replayed as failed), `cells`, `misses` (cells settled
    off the best in some repetition, each with its `gap`, `gap_se`, `within_noise` and `verdict`) and `prior_violations` (a property of the table, repeated
    from the top level). `result["trend"]` checks trend mode against its 1.6 trials-per-cell goal.

    Losses are the mean over seeds, or with `sample_seeds` one seed drawn per run and repetition.
    tpe and random get `trials_per_cell` trials per cell, by default monotone's mean rounded up.
    `start_lr` is snapped to the table's nearest LR. Non-finite numbers come out as None.
    """
    unknown = [s for s in searchers if s not in SEARCHERS]
    if unknown:
        raise ValueError(f"unknown searcher(s) {unknown}; expected some of {sorted(SEARCHERS)}")
    if repetitions < 1 or concurrency < 1:
        raise ValueError(
            f"`repetitions >= 1` and `concurrency >= 1` must hold, got {repetitions}, {concurrency}"
        )
    table = load_table(table_csv)
    lat = table.lattice
    start = min(lat.lrs, key=lambda lr: (abs(math.log(lr / start_lr)), -lr))
    best = {c: table.best(c, tie_tolerance) for c in lat.cells()}
    options = {"start_lr": start, "slowness": slowness, "tie_tolerance": tie_tolerance}
    budget_from_monotone = trials_per_cell is None
    entries: dict[str, dict[str, Any]] = {}
    order = sorted(searchers, key=lambda s: s != "monotone")  # monotone first: it sizes tpe / random
    if budget_from_monotone and {"tpe", "random"} & set(searchers) and "monotone" not in searchers:
        order.insert(0, "monotone")
    with quiet_optuna():
        for name in order:
            if name in ("tpe", "random") and trials_per_cell is None:
                trials_per_cell = math.ceil(round(entries["monotone"]["mean_trials_per_cell"], 6))
            reps = 1 if name in DETERMINISTIC and not sample_seeds else repetitions
            runs = [
                _replay_once(
                    table,
                    name,
                    rep,
                    seed,
                    sample_seeds,
                    concurrency,
                    dict(options, trials_per_cell=trials_per_cell or 2, seed=seed + rep),
                )
                for rep in range(reps)
            ]
            entries[name] = _summarise(table, best, runs)
    violations, too_fast = _prior_checks(table, best, slowness)
    for entry in entries.values():
        entry["prior_violations"] = violations
    result: dict[str, Any] = {
        "table": {
            "path": table_csv,
            "models": list(lat.models),
            "epochs": list(lat.epochs),
            "lrs": list(lat.lrs),
            "cells": lat.n_cells(),
            "rows": table.n_rows,
            "cells_without_data": [lat.name(c) for c, b in best.items() if b is None],
            "best_lr": {lat.name(c): (lat.lrs[b] if b is not None else None) for c, b in best.items()},
        },
        "settings": {
            "repetitions": repetitions,
            "concurrency": concurrency,
            "seed": seed,
            "sample_seeds": sample_seeds,
            "slowness": slowness,
            "tie_tolerance": tie_tolerance,
            "trials_per_cell": trials_per_cell,
            "start_lr": start,
        },
        "searchers": {name: entries[name] for name in searchers},
        "prior_violations": violations,
        "slowness_violations": too_fast,
    }
    if "trend" in entries:
        trend, mono = entries["trend"], entries.get("monotone")
        base_hits = mono["hit_rate"] if mono else None
        result["trend"] = {
            "mean_trials_per_cell": trend["mean_trials_per_cell"],
            "hit_rate": trend["hit_rate"],
            "monotone_hit_rate": base_hits,
            "target_trials_per_cell": TREND_TARGET,
            "meets_target": bool(
                trend["mean_trials_per_cell"] <= TREND_TARGET
                and (base_hits is None or trend["hit_rate"] >= base_hits - 1e-9)
            ),
        }
    return _json_safe(result)


def _replay_once(
    table: Table,
    name: str,
    rep: int,
    seed: int,
    sample_seeds: bool,
    concurrency: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    lat = table.lattice
    rng = random.Random(f"{seed}/{rep}")
    drawn: dict[tuple[Cell, int], float | None] = {}
    missing = 0

    def evaluate(cell: Cell, lr: float) -> Outcome:
        nonlocal missing
        key = (cell, lat.lr_index(lr))
        if key not in drawn:  # one draw per run and repetition, whoever asks
            drawn[key] = table.sample_loss(cell, key[1], rng) if sample_seeds else table.mean_loss(*key)
        loss = drawn[key]
        if loss is None:
            missing += 1
            return Outcome(math.inf, "failed")
        return Outcome(loss, "ok") if math.isfinite(loss) else Outcome(math.inf, "diverged")

    # a run missing from the table fails the same way however often it is retried: no retries
    searcher = make_searcher(
        name, lat, storage=None, study_name=f"replay-{name}-{rep}", max_retries=0, **options
    )
    run = simulate(
        searcher,
        evaluate,
        concurrency=concurrency,
        duration=lambda cell, lr: table.duration(cell, lat.lr_index(lr)),
    )
    return {
        "trials": len(run.trials),
        "flops": sum(table.flops(t.proposal.cell, lat.lr_index(t.proposal.lr)) for t in run.trials),
        "makespan": run.makespan,
        "missing": missing,
        "settled": {c: lat.lr_index(lr) for c, lr in run.settled.items()},
    }


def _summarise(table: Table, best: dict[Cell, int | None], runs: list[dict[str, Any]]) -> dict[str, Any]:
    lat = table.lattice
    known = {c: i for c, i in best.items() if i is not None}  # cells the table has data for
    scored = [c for c in lat.cells() if c in known]
    hits, near, regrets = [], [], []
    settled_at: dict[Cell, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    noise: dict[tuple[Cell, int], dict[str, Any]] = {}  # (cell, settled LR) -> its comparison with the best

    def noise_of(c: Cell, got: int) -> dict[str, Any]:
        if (c, got) not in noise:
            noise[(c, got)] = _noise_fields(table, c, got, known[c])
        return noise[(c, got)]

    for run in runs:
        for c in scored:
            got = run["settled"][c]
            settled_at[c][got] += 1
            hits.append(got == known[c])
            near.append(got == known[c] or noise_of(c, got)["within_noise"] is True)
            regrets.append(_regret(table.mean_loss(c, got), table.mean_loss(c, known[c])))
    n = len(runs)
    misses = []
    for c in scored:
        wrong = collections.Counter({i: k for i, k in settled_at[c].items() if i != known[c]})
        if wrong:
            got = wrong.most_common(1)[0][0]  # the most frequent wrong LR
            misses.append(
                {
                    "cell": lat.name(c),
                    "settled": lat.lrs[got],
                    "best": lat.lrs[known[c]],
                    "miss_rate": sum(wrong.values()) / n,
                    **noise_of(c, got),
                }
            )
    trials = sum(r["trials"] for r in runs) / n
    finite = [x for x in regrets if math.isfinite(x)]
    return {
        "mean_trials_per_cell": trials / lat.n_cells(),
        "hit_rate": sum(hits) / len(hits) if hits else None,
        # hits, plus misses whose loss the seeds cannot tell from the best's (paired t-test, 95%)
        "hit_rate_within_noise": sum(near) / len(near) if near else None,
        # regret over cells settled on a finished run; the others are counted apart
        "mean_regret": sum(finite) / len(finite) if finite else None,
        "max_regret": max(finite, default=None),
        "settled_diverged": (len(regrets) - len(finite)) / n,
        "total_flops": sum(r["flops"] for r in runs) / n,
        "cells": lat.n_cells(),
        "mean_trials": trials,
        "makespan": sum(r["makespan"] for r in runs) / n,
        "missing_trials": sum(r["missing"] for r in runs) / n,
        "repetitions": n,
        "misses": misses,
    }


def _noise_fields(table: Table, cell: Cell, got: int, best: int) -> dict[str, Any]:
    """How LR index `got` compares with `best` in `cell`, over seeds. `gap`: relative loss excess;
    `gap_se`: its standard error; `within_noise`: True when the seeds cannot tell the two apart
    (paired t-test, 95%), False when they can, None when there is nothing to judge by;
    `verdict`: within, beyond, unknown (fewer than `MIN_SEEDS` seeds), diverged or missing (no run)."""
    gap = table.gap(cell, got, best)
    if gap is None:
        return {"gap": None, "gap_se": None, "within_noise": None, "verdict": "missing"}
    # with few seeds a t-test has no power: every gap "cannot be told apart", which says nothing
    within = gap.within_noise(NOISE_LEVEL) if gap.df is None or gap.df >= MIN_SEEDS - 1 else None
    if not math.isfinite(gap.rel):
        verdict = "diverged"
    else:
        verdict = {True: "within", False: "beyond", None: "unknown"}[within]
    return {"gap": gap.rel, "gap_se": gap.se, "within_noise": within, "verdict": verdict}


def _regret(loss: float | None, best: float | None) -> float:
    """(loss - best) / best; a settled LR missing from the table or diverged has infinite regret."""
    if loss is None or best is None:
        return math.inf
    if loss == best:
        return 0.0
    if not math.isfinite(loss):
        return math.inf
    return (loss - best) / abs(best) if best else loss - best


def _prior_checks(table: Table, best: dict[Cell, int | None], slowness: int) -> tuple[list[Any], list[Any]]:
    """Cells whose best LR rises above a predecessor's, and cells that fall more than `slowness`
    steps below their bound: where the table breaks the prior the searchers assume."""
    lat = table.lattice
    known = {c: i for c, i in best.items() if i is not None}
    rises, falls = [], []
    for c, i in known.items():
        preds = [p for p in lat.predecessors(c) if p in known]
        if not preds:
            continue
        for p in preds:
            if i > known[p]:
                rises.append(
                    {
                        "cell": lat.name(c),
                        "lr": lat.lrs[i],
                        "predecessor": lat.name(p),
                        "predecessor_lr": lat.lrs[known[p]],
                        # how much worse this cell does at the predecessor's LR than at its best
                        **_noise_fields(table, c, known[p], i),
                    }
                )
        bound = min(known[p] for p in preds)
        if i < bound - slowness:
            falls.append(
                {"cell": lat.name(c), "lr": lat.lrs[i], "bound": lat.lrs[bound], "steps_below": bound - i}
            )
    return rises, falls


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of `run_replay`'s result, one line per searcher."""

    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    t = result["table"]
    lines = [
        (
            f"{t['path']}: {len(t['models'])} models x {len(t['epochs'])} budgets x {len(t['lrs'])} LRs "
            f"({t['cells']} cells), concurrency {result['settings']['concurrency']}"
        ),
        (
            f"{'searcher':<10} {'trials/cell':>11} {'hit rate':>8} {'hit~noise':>9} {'mean regret':>11} {'max regret':>10} "
            f"{'total flops':>11} {'makespan':>10} {'misses':>6} {'diverged':>8}"
        ),
    ]
    for name, e in result["searchers"].items():
        lines.append(
            f"{name:<10} {e['mean_trials_per_cell']:>11.2f} {num(e['hit_rate'], '.3f'):>8} "
            f"{num(e['hit_rate_within_noise'], '.3f'):>9} "
            f"{num(e['mean_regret'], '.4f'):>11} {num(e['max_regret'], '.4f'):>10} "
            f"{num(e['total_flops'], '.3g'):>11} {num(e['makespan'], '.4g'):>10} {len(e['misses']):>6} {e['settled_diverged']:>8.2f}"
        )
    if "trend" in result:
        tr = result["trend"]
        verdict = "meets it" if tr["meets_target"] else "falls short"
        lines.append(
            f"trend: {tr['mean_trials_per_cell']:.2f} trials/cell at hit rate {num(tr['hit_rate'], '.3f')} "
            f"(monotone {num(tr['monotone_hit_rate'], '.3f')}; target <= {tr['target_trials_per_cell']} "
            f"at the same hit rate): {verdict}"
        )
    for key, what in (
        ("prior_violations", "best LR above a predecessor's"),
        ("slowness_violations", "best LR more than `slowness` steps below its bound"),
    ):
        found = list(dict.fromkeys(v["cell"] for v in result[key]))  # a cell may rise above both predecessors
        if found:
            cells = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
            lines.append(f"table cells with {what}: {len(found)} ({cells})")
    lines += _best_lr_lattice(result)
    mono = result["searchers"].get("monotone")
    if mono and mono["misses"]:
        lines.append("monotone's misses (gap: loss over the best's, +- one standard error over seeds):")
        for miss in mono["misses"]:
            lines.append(
                f"  {miss['cell']}: settled {miss['settled']:g}, best {miss['best']:g}: {_gap_text(miss)}"
            )
    lines.append(
        "hit~noise: hits, plus cells settled on an LR the seeds cannot tell from the best (paired t-test, 95%)"
    )
    return "\n".join(lines)


VERDICTS = {
    "within": "the seeds cannot tell them apart",
    "beyond": "significant over seeds",
    "unknown": f"no verdict: fewer than {MIN_SEEDS} seeds",
}


def _gap_text(miss: dict[str, Any]) -> str:
    if miss["verdict"] == "missing":
        return "not in the table"
    if miss["verdict"] == "diverged":
        return "diverged"
    se = "" if miss["gap_se"] is None else f" +- {miss['gap_se']:.1%}"
    return f"{miss['gap']:.1%}{se} ({VERDICTS[miss['verdict']]})"


def _best_lr_lattice(result: dict[str, Any]) -> list[str]:
    """The table's best LR per cell, models down and budgets across; a cell whose best rises above
    a predecessor's is marked `^` (significant over seeds), `~` (within seed noise) or `?` (too few
    seeds to tell)."""
    t = result["table"]
    rank = {"^": 2, "?": 1, "~": 0}
    marks: dict[str, str] = {}
    for v in result["prior_violations"]:
        mark = "^" if v["verdict"] in ("beyond", "diverged") else "~" if v["verdict"] == "within" else "?"
        if rank[mark] >= rank.get(marks.get(v["cell"], "~"), 0):
            marks[v["cell"]] = mark
    rows = []
    for m in t["models"]:
        labels = []
        for e in t["epochs"]:
            cell = cell_name(m, e)
            lr = t["best_lr"].get(cell)
            labels.append(("-" if lr is None else f"{lr:g}") + marks.get(cell, " "))
        rows.append((m, labels))
    header = [f"{e:g} ep" for e in t["epochs"]]
    width = 2 + max(len(x) for x in header + [lab for _, labs in rows for lab in labs])
    name = max(len(m) for m in t["models"])
    legend = f"^ above a predecessor's, significant; ~ within seed noise; ? no verdict (< {MIN_SEEDS} seeds)"
    out = [f"best LR per cell ({legend if marks else 'mean over seeds'}):"]
    out.append(f"  {'':<{name}}" + "".join(f"{h:>{width}}" for h in header))
    for m, labels in rows:
        out.append(f"  {m:<{name}}" + "".join(f"{lab:>{width}}" for lab in labels))
    return out


def main(argv: list[str] | None = None) -> int:
    """`raysweep bench searcher`; bad input raises `SpecError` for the CLI to print."""
    parser = argparse.ArgumentParser(
        prog="raysweep bench searcher",
        description="Replay LR searchers against a results table (CSV) and score trials per cell "
        "against how often each settles on the table's best LR.",
        epilog="Columns: trials/cell; hit rate (share of cells settled on the table's best LR, by mean "
        "loss over seeds); hit~noise (also counting cells settled on an LR whose loss the seeds cannot "
        "tell from the best's: a paired t-test over the seed column at 95%, given at least 5 seeds); mean and max regret "
        "((loss - best) / best); total flops; makespan (replayed, in core hours when the table has them); "
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
    parser.add_argument("--seed", type=int, default=0, help="seeds tpe, random and seed sampling (default 0)")
    parser.add_argument("--slowness", type=int, default=1, help="prior's steps below the bound (default 1)")
    parser.add_argument("--tie-tolerance", type=float, default=0.0, help="relative loss tie (default 0)")
    parser.add_argument(
        "--trials-per-cell",
        type=int,
        default=None,
        help="tpe/random budget per cell (default: monotone's mean, rounded up)",
    )
    parser.add_argument(
        "--start-lr",
        type=float,
        default=1.6,
        help="first cell's starting LR, snapped to the table's grid (default 1.6)",
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.searchers.split(",") if s.strip()]
    unknown = [s for s in names if s not in SEARCHERS]
    if unknown:
        parser.error(f"unknown searcher(s) {unknown}; expected some of {sorted(SEARCHERS)}")
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
    )
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
