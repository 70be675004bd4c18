"""The replay's result as plain text: one line per searcher, the table's best LR per cell, the misses."""

from __future__ import annotations

from typing import Any

from raysweep.bench.scores import MIN_SEEDS
from raysweep.core.records import TrialStatus, cell_name


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
            f"{'searcher':<13} {'trials/cell':>11} {'flops/cell':>10} {'hit rate':>8} {'hit~noise':>9} {'mean regret':>11} {'max regret':>10} "
            f"{'total flops':>11} {'makespan':>10} {'misses':>6} {'diverged':>8}"
        ),
    ]
    for name, e in result["searchers"].items():
        lines.append(
            f"{name:<13} {e['mean_trials_per_cell']:>11.2f} {num(e.get('full_trials_per_cell'), '.2f'):>10} "
            f"{num(e['hit_rate'], '.3f'):>8} "
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
    peers = {name: e["peer"] for name, e in result["searchers"].items() if "peer" in e}
    if peers:
        lines.append("peers (their own code, replaying partial trials along the table's curves):")
        lines += [f"  {name}: {note}" for name, note in peers.items()]
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
    lines.append("flops/cell: FLOPs per settled cell in full trials of that cell (a trial stopped at f of its "
                 "budget counts f)")
    return "\n".join(lines)


VERDICTS = {
    "within": "the seeds cannot tell them apart",
    "beyond": "significant over seeds",
    "unknown": f"no verdict: fewer than {MIN_SEEDS} seeds",
}


def _gap_text(miss: dict[str, Any]) -> str:
    if miss["verdict"] == "missing":
        return "not in the table"
    if miss["verdict"] == TrialStatus.DIVERGED:
        return TrialStatus.DIVERGED.value
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
        mark = "^" if v["verdict"] in ("beyond", TrialStatus.DIVERGED) else "~" if v["verdict"] == "within" else "?"
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
