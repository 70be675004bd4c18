"""The searchers by name: one row each, as timm's `model_cfgs` table and raysweep's ladder table are.

A row says how to build the searcher and what a user may expect of it: trials per cell (for the dry
run's estimate), whether it follows the paper's prior (monotone LR), whether `--resume` continues
it from its Optuna study, and whether it proposes the same trials every time (for the replay).
`raysweep.config.SearcherName` lists the same names for the YAML's validation (a test keeps the two
equal), and the defaults of its options are `raysweep.config.SearchSpec`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raysweep.config import SearchSpec
from raysweep.core.space import Lattice
from raysweep.search._grid import GridSearcher
from raysweep.search._per_cell import RandomSearcher, TPESearcher
from raysweep.search._prior_sampler import BracketSearcher, MonotoneSearcher, TrendSearcher, VerifySearcher
from raysweep.search.base import CellSearcher

# Trials the monotone rule spends per cell, for the estimate: about 2 (2.08-2.10 measured in the
# replay benchmarks, benchmarks/README.md)
MONOTONE_PER_CELL = 2


@dataclass(frozen=True)
class SearcherRow:
    name: str
    factory: Callable[..., CellSearcher]  # factory(lattice, **options); each takes the options it uses
    # trials per cell the dry run plans with; None: every LR of the grid ("grid"); 0: `trials_per_cell`
    per_cell: int | None
    prior: bool  # follows the paper's prior: the optimal LR falls monotonically with size and budget
    resumable: bool  # keeps its trials in Optuna storage, so `--resume` continues it
    deterministic: bool  # proposes the same trials for the same results (the replay repeats it once)

    def trials_per_cell(self, *, n_lrs: int, budget: int) -> int:
        """What the dry run plans with, for a grid of `n_lrs` LRs and `search.trials_per_cell` = budget."""
        if self.per_cell is None:
            return n_lrs
        return self.per_cell or budget


def _grid(lattice: Lattice, *, tie_tolerance: float = SearchSpec.tie_tolerance,
          max_retries: int = SearchSpec.max_retries, **_: Any) -> CellSearcher:
    return GridSearcher(lattice, tie_tolerance=tie_tolerance, max_retries=max_retries)


SEARCHER_TABLE: tuple[SearcherRow, ...] = (
    SearcherRow("grid", _grid, per_cell=None, prior=False, resumable=False, deterministic=True),
    SearcherRow("monotone", MonotoneSearcher, per_cell=MONOTONE_PER_CELL, prior=True, resumable=True,
                deterministic=True),
    SearcherRow("bracket", BracketSearcher, per_cell=2, prior=True, resumable=True, deterministic=True),
    SearcherRow("verify", VerifySearcher, per_cell=3, prior=True, resumable=True, deterministic=True),
    SearcherRow("trend", TrendSearcher, per_cell=2, prior=True, resumable=True, deterministic=True),
    SearcherRow("tpe", TPESearcher, per_cell=0, prior=False, resumable=True, deterministic=False),
    SearcherRow("random", RandomSearcher, per_cell=0, prior=False, resumable=True, deterministic=False),
)
SEARCHER_ROWS: dict[str, SearcherRow] = {row.name: row for row in SEARCHER_TABLE}
SEARCHERS: dict[str, Callable[..., CellSearcher]] = {row.name: row.factory for row in SEARCHER_TABLE}


def searcher_row(name: str) -> SearcherRow:
    if name not in SEARCHER_ROWS:
        raise ValueError(f"searcher {name!r} is not available; expected one of {sorted(SEARCHER_ROWS)}")
    return SEARCHER_ROWS[name]


def make_searcher(name: str, lattice: Lattice, **options: Any) -> CellSearcher:
    return searcher_row(name).factory(lattice, **options)
