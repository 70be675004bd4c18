"""Synthetic results tables shaped like the paper's finding 3, for trying the replay benchmark.

The optimal LR is 1.6 at small budgets for every model and falls past a knee as the budget grows,
faster for larger models; the loss is a parabola in log LR around it, and LRs far enough above it
diverge. `write_table` writes one such table as CSV in the format `bench.table` reads; with
`eval_points` each run also holds a validation curve (`curve_loss`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from raysweep.results.rows import format_curve
from raysweep.results.rows import write_table as write_rows
from raysweep.search.testing import LRS

EPOCHS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # the paper's budgets


def paper_optimum(m: int, epochs: float) -> float:
    """log2 of the optimal LR: flat at 1.6 up to 0.5 epochs, then falling 0.35 + 0.1 m grid steps per
    doubling of the budget (each rung falls a little faster than the one below)."""
    return math.log2(1.6) - (0.35 + 0.1 * m) * max(0.0, math.log2(epochs / 0.5))


def write_table(
    path: str,
    *,
    n_models: int = 6,
    epochs: Sequence[float] = EPOCHS,
    lrs: Sequence[float] = LRS,
    seeds: int = 2,
    noise: float = 0.0,
    seed: int = 0,
    optimum: Callable[[int, float], float] = paper_optimum,
    diverge_steps: float | None = 1.5,
    eval_points: int = 0,
) -> None:
    """Write a full grid (every model, budget, LR and seed); `noise` is the loss's per-seed std dev.

    A run diverges when its LR is more than `diverge_steps` grid steps (factors of 2) above the optimum.
    With `eval_points` > 0 each run holds a curve evaluated at k / eval_points of its budget
    (`curve_loss`), its last point the final loss; a diverged run's curve is inf throughout.
    """
    rng = random.Random(seed)
    lines: list[list[object]] = []
    for m in range(n_models):
        params = 1e6 * 2**m
        for e in epochs:
            flops = 6 * params * 60_000 * e * 3  # forward + backward, 60k images per epoch
            best = optimum(m, e)
            for lr in lrs:
                off = math.log2(lr) - best
                for s in range(seeds):
                    diverged = diverge_steps is not None and off > diverge_steps
                    if diverged:
                        loss = math.inf
                    else:
                        loss = 4.0 * (1 + m) ** -0.3 * e**-0.1 + 0.02 * off**2 + rng.gauss(0, noise)
                    # full precision for epochs and lr, 6 decimals for the loss: the tables the tests replay
                    line: list[object] = [f"r{m}", int(params), e, lr, s, f"{loss:.6f}", f"{flops:.4g}",
                                          f"{flops / 1e15:.4g}"]
                    if eval_points > 0:
                        shift = loss - curve_loss(m, e, lr, 1.0, optimum) if not diverged else 0.0  # the seed's noise
                        points = [(k / eval_points, math.inf if diverged else
                                   curve_loss(m, e, lr, k / eval_points, optimum) + shift)
                                  for k in range(1, eval_points + 1)]
                        line.append(format_curve(points))
                    lines.append(line)
    write_rows(path, lines)


def curve_loss(m: int, epochs: float, lr: float, frac: float,
               optimum: Callable[[int, float], float] = paper_optimum) -> float:
    """The noiseless validation loss of rung m at `frac` of an `epochs` budget trained at `lr`: the
    loss of a run that has seen epochs x frac epochs, plus 0.05 (1 - frac) for a schedule that has not
    annealed yet. Before the end the curve's best LR is the shorter budget's (`optimum(m, epochs x
    frac)`, larger), as if the partial run were a short one: the trap finding 3 sets for early
    stopping. At frac 1 it is the final loss `write_table` writes."""
    seen = epochs * frac
    off = math.log2(lr) - optimum(m, max(seen, 1e-9))
    return 4.0 * (1 + m) ** -0.3 * seen**-0.1 + 0.02 * off**2 + 0.05 * (1 - frac)
