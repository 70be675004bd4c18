"""The regret-against-FLOPs figure of a replay (issue 16): every method a point, the Pareto picture.

x: FLOPs per settled cell in full trials of that cell (a trial stopped at fraction f counts f);
y: mean regret over cells, in percent. raysweep's searchers and the peers (Tune's schedulers,
Optuna's pruners) in two colours; the methods no other beats on both axes are joined by a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names of the points no other point beats on both axes (lower is better on both), by x."""
    front = [n for n, (x, y) in points.items()
             if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2 in points.values())]
    return sorted(front, key=lambda n: points[n])


def log_regret_axis(regrets_pct: list[float]) -> bool:
    """Whether the figure's regret axis goes logarithmic above 1%: when one method is far off (a
    diverging LR kept, 20x the median and above 20%), which on a linear axis would flatten every other
    point onto zero."""
    ys = sorted(regrets_pct)
    return bool(ys) and ys[0] >= 0 and ys[-1] > 20 * max(ys[len(ys) // 2], 1.0)


def plot_pareto(result: dict[str, Any], path: Path) -> list[str]:
    """Write the figure of `run_replay`'s result to `path`; the Pareto-front methods, by FLOPs."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    points = {name: (e["full_trials_per_cell"], 100 * e["mean_regret"])
              for name, e in result["searchers"].items()
              if e.get("full_trials_per_cell") is not None and e.get("mean_regret") is not None}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (name, (x, y)) in enumerate(sorted(points.items(), key=lambda kv: kv[1])):
        peer = "peer" in result["searchers"][name]
        ax.scatter([x], [y], color="tab:orange" if peer else "tab:blue", marker="s" if peer else "o", zorder=3)
        # staggered labels: methods often share a regret (0) at nearby costs
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4 + 10 * (k % 3)), fontsize=7)
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot([points[n][0] for n in front], [points[n][1] for n in front], color="grey", lw=1, ls="--",
                zorder=1, label="Pareto front")
    ax.scatter([], [], color="tab:blue", marker="o", label="raysweep searchers")
    ax.scatter([], [], color="tab:orange", marker="s", label="peers (Tune, Optuna, NePS)")
    ax.set_xlabel("FLOPs per settled cell (full trials)")
    ax.set_ylabel("mean regret (%)")
    ax.set_title(Path(result["table"]["path"]).name, fontsize=9)
    ax.set_xlim(left=0)
    ys = sorted(y for _, y in points.values())
    if log_regret_axis(ys):
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("mean regret (%; linear to 1, log above)")
        ax.set_ylim(0, ys[-1] * 3)
    else:
        ax.set_ylim(bottom=min(0.0, *ys) if ys else 0.0)
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top + 0.15 * (top - bottom))  # room for the labels above the highest point
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return front
