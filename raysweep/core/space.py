"""The lattice of cells a sweep covers: model rung x epoch budget, plus the learning-rate grid.

Pure Python (no torch, Ray, MLflow or Optuna) so searchers, the replay benchmark and the
analysis can share it. Cell (m, e): m indexes rungs in ascending size, e budgets in ascending order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from raysweep.core.records import cell_name, format_epochs

__all__ = ["Cell", "Lattice", "cell_name", "format_epochs"]


@dataclass(frozen=True, order=True)
class Cell:
    m: int  # model rung index, ascending parameter count
    e: int  # epoch budget index, ascending


@dataclass(frozen=True)
class Lattice:
    models: tuple[str, ...]  # rung names, ascending size
    epochs: tuple[float, ...]  # budgets, ascending
    lrs: tuple[float, ...]  # the learning-rate grid, ascending
    # Cells that say nothing of each other's optimum (a fine-tuning sweep's units: checkpoints,
    # seeds, k): no cell bounds another, so a prior searcher runs each cell's own rule from lr.base
    independent: bool = False

    def __post_init__(self) -> None:
        assert self.models and self.epochs and self.lrs, "a lattice needs models, epochs and lrs"
        assert list(self.lrs) == sorted(self.lrs), "the LR grid must be ascending"

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.models), len(self.epochs)

    def cells(self) -> Iterator[Cell]:
        """Cells in row-major order: (0,0), (0,1), ..., (1,0), ..."""
        for m in range(len(self.models)):
            for e in range(len(self.epochs)):
                yield Cell(m, e)

    def predecessors(self, cell: Cell) -> tuple[Cell, ...]:
        """The cells whose optimum bounds this one's: one rung smaller, one budget shorter (none when
        the cells are `independent`)."""
        out: list[Cell] = []
        if self.independent:
            return ()
        if cell.m > 0:
            out.append(Cell(cell.m - 1, cell.e))
        if cell.e > 0:
            out.append(Cell(cell.m, cell.e - 1))
        return tuple(out)

    def name(self, cell: Cell) -> str:
        """`<model>@<epochs>`, the MLflow tag `raysweep.cell`."""
        return cell_name(self.models[cell.m], self.epochs[cell.e])

    def cell_of(self, model: str, epochs: float) -> Cell:
        return Cell(self.models.index(model), _index_close(self.epochs, epochs))

    def lr_index(self, lr: float) -> int:
        return _index_close(self.lrs, lr)

    def n_cells(self) -> int:
        return len(self.models) * len(self.epochs)


def _index_close(values: tuple[float, ...], x: float) -> int:
    for i, v in enumerate(values):
        if abs(v - x) <= 1e-9 * max(1.0, abs(v)):
            return i
    raise KeyError(f"{x!r} is not one of {list(values)}")
