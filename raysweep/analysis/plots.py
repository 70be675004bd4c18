"""Figures of a sweep, from its trial rows alone (no Ray, no MLflow): testable without a cluster."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: sweeps run on headless machines
import matplotlib.pyplot as plt

from raysweep.analysis.summary import CellRow, TrialRow
from raysweep.core.records import TrialStatus


def plot_lr_curves(trials: Sequence[TrialRow], rows: Sequence[CellRow], *, models: Sequence[str],
                   epochs: Sequence[float], path: Path) -> Path:
    """Validation loss against learning rate: one panel per model, one line per epoch budget.

    The settled LR of each cell is ringed, so a glance shows whether the optimum falls with
    budget and size (the paper's finding 3) and where a searcher's bound cut a curve short.
    Diverged trials sit on the top edge as crosses; so do blown-up losses (more than 1.5x the
    worst loss at a curve's smallest LR, where a run has barely moved from its start), as
    triangles, so one run at 1e20 does not flatten every curve.
    """
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True, squeeze=False)
    ok = [t for t in trials if t.status == TrialStatus.OK and math.isfinite(t.val_loss)]
    top = _top(ok)
    colors = plt.get_cmap("viridis")
    settled = {(r.model, r.epochs): r for r in rows if r.best_lr is not None}
    for ax, model in zip(axes[0], models, strict=True):
        for i, e in enumerate(epochs):
            color = colors(i / max(1, len(epochs) - 1))
            curve = sorted((t.lr, t.val_loss) for t in ok if t.model == model and t.epochs == e)
            pts = [(lr, loss) for lr, loss in curve if loss <= top]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", color=color, ms=3, label=f"{e:g} ep")
            off = [lr for lr, loss in curve if loss > top]
            if off:
                ax.plot(off, [top] * len(off), "^", color=color)
            bad = [t.lr for t in trials if t.model == model and t.epochs == e and t.status == TrialStatus.DIVERGED]
            if bad:
                ax.plot(bad, [top] * len(bad), "x", color=color)
            best = settled.get((model, e))
            if best is not None:
                ax.plot([best.best_lr], [best.val_loss], "o", mfc="none", mec="red", ms=9)
        ax.set_ylim(top=top * 1.03)
        ax.set_xscale("log", base=2)
        ax.set_title(model)
        ax.set_xlabel("peak learning rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation loss")
    for ax in axes[0][::-1]:  # the legend on the last panel that has curves (a stopped sweep may have few)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, title="budget", title_fontsize=7)
            break
    fig.suptitle("Validation loss vs learning rate (red ring: settled LR; x: diverged; ^: off the scale)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _top(ok: Sequence[TrialRow]) -> float:
    """The y-axis top: the largest loss, capped at 1.5x the worst loss at the smallest LR of any
    curve with two or more finished trials (a lone trial says nothing of where a curve starts)."""
    if not ok:
        return 1.0
    curves: dict[tuple[str, float], list[TrialRow]] = {}
    for t in ok:
        curves.setdefault((t.model, t.epochs), []).append(t)
    starts = [min(ts, key=lambda t: t.lr).val_loss for ts in curves.values() if len(ts) >= 2]
    top = max(t.val_loss for t in ok)
    if starts:
        top = min(top, 1.5 * max(starts))
    return top * 1.05
