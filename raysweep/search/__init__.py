"""Searchers: which learning rate to try next in which (model, epoch budget) cell.

`make_searcher` is the registry the CLI and the benchmark use; each algorithm lives in its own
private module behind `CellSearcher` (see `base`):

- `grid`: every LR of the grid in every cell (the exhaustive baseline).
- `monotone` (default): the paper's 2-trial rule. A cell's optimum is at most its bound (the
  smallest settled optimum of its predecessors) and at most `slowness` steps below it.
- `bracket`: monotone, then keep stepping down while the lowest tried LR wins.
- `verify`: monotone plus one step above the bound.
- `trend`: start from the fitted trend of settled cells, clipped to the bound; one trial when it
  agrees with the bound.
- `tpe`, `random`: Optuna's TPESampler / RandomSampler, `trials_per_cell` trials in each cell.

Every searcher tells a `diverged` trial (worse than any finished one) from a `failed` one (an
exception, OOM, preemption: nothing learned about the LR). A failed (cell, lr) is proposed again, up
to `max_retries` times (default 2), and after that counts as diverged so that a sweep cannot hang.

The prior searchers, tpe and random keep their trials in Optuna storage (`storage`, a URL; in
memory when None): constructing one again over the same storage and `study_name` resumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raysweep.search._grid import GridSearcher
from raysweep.search._per_cell import RandomSearcher, TPESearcher
from raysweep.search._prior import pick_best
from raysweep.search._prior_sampler import (
    BracketSearcher,
    MonotoneSearcher,
    PriorSampler,
    PriorSearcher,
    TrendSearcher,
    VerifySearcher,
)
from raysweep.search._study import MAX_RETRIES
from raysweep.search.base import FINISHED, CellSearcher, Outcome, Proposal
from raysweep.space import Lattice

__all__ = [
    "FINISHED",
    "SEARCHERS",
    "BracketSearcher",
    "CellSearcher",
    "GridSearcher",
    "MonotoneSearcher",
    "Outcome",
    "PriorSampler",
    "PriorSearcher",
    "Proposal",
    "RandomSearcher",
    "TPESearcher",
    "TrendSearcher",
    "VerifySearcher",
    "make_searcher",
    "pick_best",
]

# name -> factory(lattice, **options). Options (all keyword): start_lr, slowness, tie_tolerance,
# max_retries, trials_per_cell, seed, storage, study_name; each searcher takes the ones it uses.
SEARCHERS: dict[str, Callable[..., CellSearcher]] = {
    "grid": lambda lattice, *, tie_tolerance=0.0, max_retries=MAX_RETRIES, **_: GridSearcher(
        lattice, tie_tolerance=tie_tolerance, max_retries=max_retries
    ),
    "monotone": MonotoneSearcher,
    "bracket": BracketSearcher,
    "verify": VerifySearcher,
    "trend": TrendSearcher,
    "tpe": TPESearcher,
    "random": RandomSearcher,
}


def make_searcher(name: str, lattice: Lattice, **options: Any) -> CellSearcher:
    if name not in SEARCHERS:
        raise ValueError(f"searcher {name!r} is not available; expected one of {sorted(SEARCHERS)}")
    return SEARCHERS[name](lattice, **options)
