"""The study's figures, drawn from a `StudyFit` alone (no Ray, no MLflow).

- `loss_vs_compute.png`: the paper's Figure 2. Validation loss against compute on log-log axes, one
  series per model (its cells at their best LR, joined along the epoch budget), the frontier
  marked, and its power law with slope, R^2 and the bootstrap interval.
- `optimal_allocation.png`: the frontier's model size and epoch budget against compute, each with
  its fitted exponent, and the optimum the parametric law implies.
- `lr_vs_epochs.png`: the paper's Figure 3. Best LR per cell against the epoch budget, one line per
  model, the fitted trend, and the cells that break monotonicity ringed.
- `frontiers_overlay.png`: two or more studies' frontiers and power laws on one axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: analyses run on headless machines
import matplotlib.pyplot as plt
import numpy as np

from raysweep.analysis.study import StudyFit

LOSS_VS_COMPUTE = "loss_vs_compute.png"
OPTIMAL_ALLOCATION = "optimal_allocation.png"
LR_VS_EPOCHS = "lr_vs_epochs.png"
OVERLAY = "frontiers_overlay.png"
DPI = 120


def _colors(n: int) -> list:  # type: ignore[type-arg]
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]


def _ci(iv) -> str:  # type: ignore[no-untyped-def]
    return f" [{iv.lo:.3f}, {iv.hi:.3f}]" if math.isfinite(iv.lo) else ""


def plot_loss_vs_compute(fit: StudyFit, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for model, color in zip(fit.models, _colors(len(fit.models)), strict=True):
        cs = sorted((c for c in fit.cells if c.model == model), key=lambda c: c.epochs)
        ax.plot([c.compute for c in cs], [c.loss for c in cs], "o-", color=color, ms=4, lw=1,
                label=f"{model} ({fit.rung_params[model]:,})")
        for c in cs:
            ax.annotate(f"{c.epochs:g}", (c.compute, c.loss), fontsize=6, color=color, xytext=(3, 3),
                        textcoords="offset points")
    fr = fit.frontier
    ax.plot([c.compute for c in fr], [c.loss for c in fr], "s", mfc="none", mec="black", ms=9, label="frontier")
    pl = fit.power_law
    if pl.ok:
        xs = np.geomspace(min(c.compute for c in fr), max(c.compute for c in fit.cells), 50)
        ax.plot(xs, [pl.predict(x) for x in xs], "k--", lw=1.2,
                label=f"L ∝ C^{pl.slope:.3f}{_ci(pl.slope_ci)}, R²={pl.r2:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_axis_label(fit))
    ax.set_ylabel("validation loss (best LR, mean over seeds)")
    ax.set_title(f"{fit.name}: loss vs compute (numbers: epoch budget)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    _edge_note(fig, fit)
    return _save(fig, path)


def _axis_label(fit: StudyFit) -> str:
    label = fit.axis.label
    return label if len(label) < 60 else label.replace(" (", "\n(", 1)


def _edge_note(fig, fit: StudyFit) -> None:  # type: ignore[no-untyped-def]
    if fit.warnings:
        edges = " and ".join(w.edge.replace("_", " ") for w in fit.warnings)
        fig.text(0.01, 0.005, f"warning: frontier points sit at the {edges} of the lattice (see report.md)",
                 fontsize=7, color="firebrick")


def plot_allocation(fit: StudyFit, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fr = fit.frontier
    cs = [c.compute for c in fr]
    xs = np.geomspace(min(cs), max(c.compute for c in fit.cells), 50)
    ch = fit.chinchilla
    for ax, law, values, name in ((axes[0], fit.allocation.params, [c.params for c in fr], "parameters N"),
                                  (axes[1], fit.allocation.epochs, [c.epochs for c in fr], "epoch budget")):
        ax.plot(cs, values, "ks", mfc="none", ms=8, label="frontier cells")
        for c, v in zip(fr, values, strict=True):
            ax.annotate(c.name, (c.compute, v), fontsize=6, xytext=(3, -8), textcoords="offset points")
        if law.ok:
            ax.plot(xs, [law.predict(x) for x in xs], "k--", lw=1,
                    label=f"frontier fit ∝ C^{law.slope:.2f}{_ci(law.slope_ci)}")
        if ch.ok:
            opt = [ch.optimum(x, fit.cost.k, fit.cost.gamma) for x in xs]
            i = 0 if name.startswith("parameters") else 1
            ex = ch.allocation_exponents(fit.cost.gamma)[i]
            ax.plot(xs, [o[i] for o in opt], ":", color="tab:blue", lw=1.5,
                    label=f"L(N, D) optimum ∝ C^{ex:.2f} (cost ∝ N^{fit.cost.gamma:.2f}·D)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_axis_label(fit), fontsize=8)
        ax.set_ylabel(f"optimal {name}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"{fit.name}: compute-optimal allocation", fontsize=10)
    _edge_note(fig, fit)
    return _save(fig, path)


def plot_lr_vs_epochs(fit: StudyFit, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    tr = fit.lr_trend
    broken = {b.cell for b in tr.breaks}
    for model, color in zip(fit.models, _colors(len(fit.models)), strict=True):
        cs = sorted((c for c in fit.cells if c.model == model), key=lambda c: c.epochs)
        # models share grid LRs: a small offset per model keeps overlapping lines readable
        jitter = 2 ** (0.04 * (fit.models.index(model) - (len(fit.models) - 1) / 2))
        ax.plot([c.epochs for c in cs], [c.best_lr * jitter for c in cs], "o-", color=color, ms=5,
                label=f"{model} ({fit.rung_params[model]:,})")
        bad = [c for c in cs if c.name in broken]
        if bad:
            ax.plot([c.epochs for c in bad], [c.best_lr * jitter for c in bad], "o", mfc="none", mec="red", ms=11)
        if tr.ok:
            es = np.geomspace(min(fit.epochs), max(fit.epochs), 30)
            ax.plot(es, [tr.predict(fit.rung_params[model], e) for e in es], "--", color=color, lw=1)
    ax.plot([], [], "o", mfc="none", mec="red", ms=11, label="breaks monotonicity")
    if tr.ok:
        ax.plot([], [], "k--", lw=1, label=f"trend: lr ∝ N^{tr.p:.2f} · epochs^{tr.q:.2f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(list(fit.epochs), [f"{e:g}" for e in fit.epochs])
    ax.set_yticks(list(fit.lrs), [f"{lr:g}" for lr in fit.lrs])
    ax.minorticks_off()
    ax.set_xlabel("epoch budget")
    ax.set_ylabel("best peak learning rate (grid)")
    ax.set_title(f"{fit.name}: optimal LR vs epoch budget", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_overlay(fits: Sequence[StudyFit], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    palette = plt.get_cmap("tab10")
    for i, fit in enumerate(fits):
        color = palette(i % 10)
        ax.plot([c.compute for c in fit.cells], [c.loss for c in fit.cells], ".", color=color, alpha=0.35)
        fr = fit.frontier
        ax.plot([c.compute for c in fr], [c.loss for c in fr], "s-", color=color, mfc="none", ms=7,
                label=f"{fit.name} frontier")
        if fit.power_law.ok:
            xs = np.geomspace(min(c.compute for c in fr), max(c.compute for c in fr), 30)
            ax.plot(xs, [fit.power_law.predict(x) for x in xs], "--", color=color, lw=1,
                    label=f"{fit.name}: slope {fit.power_law.slope:.3f}, R²={fit.power_law.r2:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_axis_label(fits[0]))
    ax.set_ylabel("validation loss (best LR, mean over seeds)")
    ax.set_title("compute-efficient frontiers", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_all(fit: StudyFit, out: Path) -> list[Path]:
    return [plot_loss_vs_compute(fit, out / LOSS_VS_COMPUTE), plot_allocation(fit, out / OPTIMAL_ALLOCATION),
            plot_lr_vs_epochs(fit, out / LR_VS_EPOCHS)]


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
