"""Searchers: which learning rate to try next in which (model, epoch budget) cell.

`SEARCHER_TABLE` (in `registry`) is the registry the CLI, the sweep and the benchmark use, one row
per searcher; each algorithm lives in its own private module behind `CellSearcher` (see `base`).
This module is the package's one door: code outside `raysweep.search` imports from here only.

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

`early_stop` (`search.early_stop`, prior searchers): a trial clearly worse than its cell's
incumbent at a matched evaluation step stops early; the rule is pure (`early_stop.decide`) and
`CellSearcher.on_trial_result` applies it.

The prior searchers, tpe and random keep their trials in Optuna storage (`storage`, a URL; in
memory when None): constructing one again over the same storage and `study_name` resumes it.
"""

from __future__ import annotations

from raysweep.search._grid import GridSearcher
from raysweep.search._per_cell import RandomSearcher, TPESearcher
from raysweep.search._prior import Bound, Prediction, PriorRule, Propose, Settle, pick_best
from raysweep.search._prior_sampler import (
    BracketSearcher,
    MonotoneSearcher,
    PriorSampler,
    PriorSearcher,
    TrendSearcher,
    VerifySearcher,
)
from raysweep.search._study import quiet_optuna
from raysweep.search.base import FINISHED, CellSearcher, Finished, Outcome, Proposal
from raysweep.search.early_stop import AUTO_MARGIN, EarlyStop
from raysweep.search.registry import (
    MONOTONE_PER_CELL,
    SEARCHER_ROWS,
    SEARCHER_TABLE,
    SEARCHERS,
    SearcherRow,
    make_searcher,
    searcher_row,
)

__all__ = [
    "AUTO_MARGIN",
    "FINISHED",
    "MONOTONE_PER_CELL",
    "SEARCHERS",
    "SEARCHER_ROWS",
    "SEARCHER_TABLE",
    "Bound",
    "BracketSearcher",
    "CellSearcher",
    "EarlyStop",
    "Finished",
    "GridSearcher",
    "MonotoneSearcher",
    "Outcome",
    "Prediction",
    "PriorRule",
    "PriorSampler",
    "PriorSearcher",
    "Proposal",
    "Propose",
    "RandomSearcher",
    "SearcherRow",
    "Settle",
    "TPESearcher",
    "TrendSearcher",
    "VerifySearcher",
    "make_searcher",
    "pick_best",
    "quiet_optuna",
    "searcher_row",
]
