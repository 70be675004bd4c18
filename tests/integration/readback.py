"""Checks of what a sweep left in MLflow, read back from the store, shared by the integration tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from raysweep.core.records import M, Tag, TrialStatus
from raysweep.tracking import read_metric


def assert_best_in_cell(runs: list[Any]) -> int:
    """Each cell's run tagged `raysweep.best_in_cell` is the one with the lowest `val/loss` of the
    cell's ok runs, as MLflow holds them; exactly one per cell that has an ok run, none elsewhere.
    Returns how many cells have one."""
    by_cell: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        by_cell[run.data.tags[Tag.CELL]].append(run)
    for cell, cell_runs in by_cell.items():
        ok = [r for r in cell_runs if r.data.tags.get(Tag.STATUS) == TrialStatus.OK.value]
        tagged = [r for r in cell_runs if r.data.tags.get(Tag.BEST_IN_CELL) == "true"]
        assert len(tagged) == (1 if ok else 0), (cell, [r.info.run_id for r in tagged])
        if ok:
            lowest = min(read_metric(r.data.metrics[M.VAL_LOSS]) for r in ok)
            assert read_metric(tagged[0].data.metrics[M.VAL_LOSS]) == lowest, (
                cell, {r.data.params["lr"]: r.data.metrics[M.VAL_LOSS] for r in ok})
    return sum(1 for cell_runs in by_cell.values()
               if any(r.data.tags.get(Tag.BEST_IN_CELL) == "true" for r in cell_runs))
