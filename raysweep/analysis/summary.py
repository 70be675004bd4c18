"""Per-cell summary of a sweep: the best learning rate of each (model, epochs) cell and its loss."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from raysweep.core.records import M, TrialStatus, cell_name
from raysweep.results.rows import TrialRow

__all__ = ["CellRow", "TrialRow", "format_summary", "median", "summarize"]


@dataclass(frozen=True)
class CellRow:
    cell: str
    model: str
    epochs: float
    best_lr: float | None  # None when every trial of the cell diverged or failed
    val_loss: float
    val_acc: float
    trials: int
    diverged: int
    failed: int
    flops: float
    best_run_id: str


def summarize(trials: Iterable[TrialRow], *, models: Sequence[str], epochs: Sequence[float],
              settled: Mapping[tuple[str, float], float] | None = None) -> list[CellRow]:
    """One row per cell, in lattice order. The best trial is the searcher's settled LR where given
    (it may break near-ties by its own tolerance), else the lowest loss, ties to the larger LR."""
    by_cell: dict[tuple[str, float], list[TrialRow]] = {}
    for t in trials:
        by_cell.setdefault((t.model, t.epochs), []).append(t)
    rows = []
    for m in models:
        for e in epochs:
            ts = by_cell.get((m, e), [])
            if not ts:
                continue
            ok = [t for t in ts if t.status == TrialStatus.OK and math.isfinite(t.val_loss)]
            best = min(ok, key=lambda t: (t.val_loss, -t.lr)) if ok else None
            chosen = (settled or {}).get((m, e))
            if chosen is not None:
                best = next((t for t in ok if abs(t.lr - chosen) <= 1e-9 * chosen), best)
            rows.append(CellRow(
                cell=cell_name(m, e), model=m, epochs=e,
                best_lr=best.lr if best else None,
                val_loss=best.val_loss if best else math.inf,
                val_acc=best.val_acc if best else math.nan,
                trials=len(ts),
                diverged=sum(t.status == TrialStatus.DIVERGED for t in ts),
                failed=sum(t.status == TrialStatus.FAILED for t in ts),
                flops=sum(t.flops or 0.0 for t in ts),
                best_run_id=best.run_id if best else "",
            ))
    return rows


def format_summary(rows: Sequence[CellRow]) -> str:
    header = (f"{'cell':<22} {'best lr':>8} {M.VAL_LOSS:>9} {M.VAL_ACC:>8} {'trials':>6} {TrialStatus.DIVERGED:>8} "
              f"{TrialStatus.FAILED:>6}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lr = f"{r.best_lr:g}" if r.best_lr is not None else "-"
        lines.append(f"{r.cell:<22} {lr:>8} {r.val_loss:>9.4f} {r.val_acc:>8.3f} {r.trials:>6} {r.diverged:>8} {r.failed:>6}")
    return "\n".join(lines)


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return statistics.median(vals) if vals else math.nan
