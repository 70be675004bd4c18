"""Searchers: which learning rate to try next in which (model, epoch budget) cell.

`make_searcher` is the registry the CLI and the benchmark use; each algorithm lives in its own
private module behind `CellSearcher` (see `base`).
"""

from __future__ import annotations

from typing import Any, Callable

from raysweep.search._grid import GridSearcher
from raysweep.search.base import FINISHED, CellSearcher, Outcome, Proposal
from raysweep.space import Lattice

__all__ = ["FINISHED", "CellSearcher", "GridSearcher", "Outcome", "Proposal", "SEARCHERS", "make_searcher"]

# name -> factory(lattice, **options); options come from SearchSpec fields a searcher uses.
SEARCHERS: dict[str, Callable[..., CellSearcher]] = {
    "grid": lambda lattice, **_: GridSearcher(lattice),
}


def make_searcher(name: str, lattice: Lattice, **options: Any) -> CellSearcher:
    if name not in SEARCHERS:
        raise ValueError(f"searcher {name!r} is not available; expected one of {sorted(SEARCHERS)}")
    return SEARCHERS[name](lattice, **options)
