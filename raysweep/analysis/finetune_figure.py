"""The fine-tuning sweep's figure: `top1_vs_compute.png`, the paper's Figure 1.

Downstream top-1 error against the source's pre-training FLOPs on log-log axes: one colour per
rung, each point a checkpoint at its best fine-tuning LR (mean error over seeds, error bars min to
max over seeds), circles for k=1 and other markers for repeated augmentation (k>1), the loss-optimal
checkpoints ringed, the power law fitted on them as a line, and each rung's from-scratch baseline as
a dashed horizontal line in the rung's colour. Points at k>1 sit a few percent to the right of
their true compute so that they do not hide the k=1 point of the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")  # files only: analyses run on headless machines
import matplotlib.pyplot as plt
import numpy as np

from raysweep.analysis.finetune import LOSS_OPTIMAL, FitResult, Group, has_reason

TOP1_VS_COMPUTE: Final = "top1_vs_compute.png"
DPI: Final = 120
MARKERS: Final = ("o", "^", "s", "D", "v", "P")  # k=1 first, then each larger k in turn
NUDGE: Final = 1.06  # the x-offset factor per k index (a few percent of a decade on log axes)
BASELINE_STYLES: Final = ("--", ":", "-.")  # baseline lines by k, in the same order


def plot_top1_vs_compute(best: Sequence[Group], fit: FitResult, path: Path, *, title: str = "") -> Path:
    """Draw Figure 1 from each (checkpoint, k) at its best fine-tuning LR (baselines included)."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    rungs = sorted({g.model for g in best}, key=lambda m: min((g.pretrain_flops for g in best if g.model == m
                                                                and not g.baseline), default=float("inf")))
    colors = dict(zip(rungs, _colors(len(rungs)), strict=True))
    ks = sorted({g.repeats for g in best})
    tuned = [g for g in best if not g.baseline and g.pretrain_flops > 0 and g.error > 0]
    for g in tuned:
        errs = [1 - v for v in g.top1.values()]
        k_i = ks.index(g.repeats)
        x = g.pretrain_flops * NUDGE**k_i  # k>1 drawn a little to the right, so as not to hide k=1 at equal compute
        ax.errorbar([x], [g.error], yerr=[[g.error - min(errs)], [max(errs) - g.error]],
                    fmt=MARKERS[k_i % len(MARKERS)], color=colors[g.model], ms=5, capsize=2, lw=1)
        if has_reason(g, LOSS_OPTIMAL):
            ax.plot([x], [g.error], "o", mfc="none", mec="black", ms=10)
    for m in rungs:
        ax.plot([], [], "o", color=colors[m], label=m)
    for i, k in enumerate(ks):
        if k != 1:
            ax.plot([], [], MARKERS[i % len(MARKERS)], color="gray", label=f"k={k} (repeated augmentation)")
    if any(has_reason(g, LOSS_OPTIMAL) for g in tuned):
        ax.plot([], [], "o", mfc="none", mec="black", ms=10, label="loss-optimal checkpoint")
    for g in (g for g in best if g.baseline and g.error > 0):
        style = BASELINE_STYLES[ks.index(g.repeats) % len(BASELINE_STYLES)]
        ax.axhline(g.error, ls=style, color=colors[g.model], lw=1,
                   label=f"{g.model} from scratch, k={g.repeats} ({100 * g.mean:.1f}%)")
    if fit.ok:
        xs = np.geomspace(min(c for c, _ in fit.points), max(c for c, _ in fit.points), 50)
        ax.plot(xs, [fit.predict(x) for x in xs], "k-", lw=1.2, label=f"error ∝ C^{fit.b:.3g}, R²={fit.r2:.2f}")
    if tuned:
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no fine-tuned checkpoint ended ok", transform=ax.transAxes, ha="center", color="firebrick")
    ax.set_yscale("log")
    ax.set_xlabel("pre-training compute (FLOPs of the source run)")
    ax.set_ylabel("downstream top-1 error\n(best fine-tuning LR; bars: min-max over seeds)")
    ax.set_title(f"{title + ': ' if title else ''}downstream error vs pre-training compute", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside: points fill the axes
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _colors(n: int) -> list:  # type: ignore[type-arg]
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]
