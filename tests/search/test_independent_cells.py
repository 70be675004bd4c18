"""A lattice of independent cells (a fine-tuning sweep's units): no cell bounds another, so a prior
searcher runs every cell's own rule from the start LR, all cells at once."""

from __future__ import annotations

import dataclasses

from raysweep.core.space import Cell
from raysweep.search import make_searcher
from raysweep.search.simulate import simulate
from raysweep.search.testing import planted, toy_lattice


def test_independent_cells_have_no_predecessors_and_each_finds_its_own_optimum() -> None:
    lattice = dataclasses.replace(toy_lattice(4, 1), independent=True)
    assert all(lattice.predecessors(c) == () for c in lattice.cells())
    # optima that rise with the "model": a bound from the previous cell would cap them below
    optimum = {Cell(m, 0): 2 + m for m in range(4)}
    run = simulate(make_searcher("monotone", lattice, start_lr=lattice.lrs[3]), planted(lattice, optimum),
                   concurrency=4)
    assert {c: lattice.lr_index(lr) for c, lr in run.settled.items()} == optimum
    assert run.max_in_flight == 4  # every cell was ready at once
    # the same optima on a lattice with predecessors are capped by the bound the first cell sets
    bounded = simulate(make_searcher("monotone", toy_lattice(4, 1), start_lr=lattice.lrs[3]),
                       planted(toy_lattice(4, 1), optimum), concurrency=4)
    assert {c: toy_lattice(4, 1).lr_index(lr) for c, lr in bounded.settled.items()} != optimum
