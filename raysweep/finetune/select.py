"""Which pre-trained checkpoints to fine-tune, and why each was chosen.

The default is the paper's comparison (Smith et al. 2023, finding 4): at each compute level of the
pre-training frontier (`analysis.frontier.frontier_points`: each cell at its best LR, the lower
envelope of loss over compute),

- the **loss-optimal** cell: the frontier point itself;
- its **larger-model neighbour** at about the same compute: the next rung up, at a smaller epoch
  budget, the one whose compute is nearest (in ratio) to the point's;
- its **smaller-model neighbour**: the next rung down at a larger epoch budget, nearest likewise;
- optionally its **larger LR**: the smallest LR above the point's best that its cell also ran to
  the end (the paper: fine-tuning sometimes favours a slightly larger pre-training LR).

A neighbour further than `within` times (or 1/`within`) from the point's compute is not "about the
same compute" and is left out, as is one that does not exist (the point is on the smallest or
largest rung, or no budget of the next rung lies on the right side): each such gap is reported in
words, never an error. A choice picked for several reasons (the smaller-model neighbour of one
point may be the loss-optimal cell of the next) is one choice carrying every reason. A selection
that picks nothing is a `SpecError`.

Each choice is one (cell, LR); its trials are the seeds that ran it to the end, each with its kept
checkpoint (or none, which `require_checkpoints` turns into a one-line error naming the runs).

Pure (no Ray, MLflow or Optuna): it reads the rows `raysweep.tracking.read_trials` gives.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal

from raysweep.analysis.frontier import frontier_points
from raysweep.analysis.runs import CellBest, ComputeAxis, runs_from_rows
from raysweep.core.errors import SpecError
from raysweep.core.records import Tag, cell_name
from raysweep.results.rows import TrialRow, status_of

WITHIN_DEFAULT: Final = 4.0  # a neighbour's compute within 4x of the point's: rungs double, budgets double


class Why(str, Enum):
    """Why a checkpoint was chosen."""

    LOSS_OPTIMAL = "loss_optimal"  # a frontier point: lowest pre-training loss for its compute
    LARGER_MODEL = "larger_model"  # the next rung up at a smaller epoch budget, about the same compute
    SMALLER_MODEL = "smaller_model"  # the next rung down at a larger epoch budget, about the same compute
    LARGER_LR = "larger_lr"  # the same cell at the next larger LR it ran
    NAMED = "named"  # named in select.cells

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SelectRule:
    """The search space's `finetune.select` (validated by `raysweep.finetune.spec`)."""

    rule: Literal["frontier", "cells"] = "frontier"  # the paper's comparison, or the cells named below
    neighbours: bool = True  # frontier: also each point's larger- and smaller-model neighbour
    larger_lr: bool = False  # also the next larger LR each chosen cell ran
    within: float = WITHIN_DEFAULT  # a neighbour's compute within this factor of the point's
    cells: tuple[str, ...] = ()  # rule cells: `model@epochs` names


# A finished pre-training trial: results' one row type, as `read_trials` reads it back from MLflow
# (with its kept checkpoint, SHA-256, family and model shape)
Pretrained = TrialRow


@dataclass(frozen=True)
class Reason:
    """One reason a checkpoint was chosen: what, at which frontier point (compute level), in words."""

    why: Why
    point: str  # the frontier cell (compute level) the choice is compared at; the cell itself when named
    compute: float  # that point's pre-training compute (FLOPs of one run)
    text: str


@dataclass(frozen=True)
class Choice:
    """One (cell, LR) to fine-tune from: its finished seeds and every reason it was chosen."""

    model: str
    params: int
    epochs: float
    lr: float
    loss: float  # pre-training validation loss, mean over its seeds
    compute: float  # pre-training FLOPs of one run (mean over its seeds)
    trials: tuple[Pretrained, ...]  # the seeds that ran it to the end, by seed
    reasons: tuple[Reason, ...]

    @property
    def cell(self) -> str:
        return cell_name(self.model, self.epochs)

    @property
    def name(self) -> str:
        return f"{self.cell} lr={self.lr:g}"

    def why(self) -> str:
        """Every reason, in words, joined."""
        return "; ".join(r.text for r in self.reasons)


@dataclass(frozen=True)
class Selection:
    """The chosen checkpoints (cheapest first) and the comparisons that could not be made, in words."""

    choices: tuple[Choice, ...]
    missing: tuple[str, ...] = ()
    frontier: tuple[str, ...] = field(default=())  # the frontier cells, cheapest first (rule frontier)


def pretrained_from_rows(rows: Iterable[TrialRow | Mapping[str, Any]]) -> list[Pretrained]:
    """`read_trials` rows (or mappings with their field names) as rows with a seed, a finite or
    infinite loss and a cost."""
    out = []
    for row in rows:
        r = row if isinstance(row, TrialRow) else TrialRow(**{k: v for k, v in row.items() if k in _FIELDS})
        loss = r.val_loss if math.isfinite(r.val_loss) else math.inf
        out.append(dataclasses.replace(r, seed=str(r.seed or 0), val_loss=loss, flops=float(r.flops or 0.0),
                                       core_hours=float(r.core_hours or 0.0), status=status_of(loss)))
    return out


_FIELDS = {f.name for f in dataclasses.fields(TrialRow)}


def select(trials: Sequence[Pretrained], rule: SelectRule = SelectRule(), *, source: str = "") -> Selection:
    """The checkpoints `rule` picks from finished pre-training trials; a SpecError if it picks none."""
    finished = [t for t in trials if math.isfinite(t.val_loss)]
    where = source or "the pre-training experiment"
    if not finished:
        raise SpecError(f"expected finished pre-training trials with a finite loss in {where}, got none",
                        key="finetune.pretrained")
    runs = runs_from_rows(trials, name="pretraining", source=where)
    cells = runs.cells(ComputeAxis.FLOPS)
    by_name = {c.name: c for c in cells}
    picked: dict[tuple[str, float, float], list[Reason]] = {}
    missing: list[str] = []

    def pick(cell: CellBest, lr: float, reason: Reason) -> None:
        picked.setdefault((cell.model, cell.epochs, lr), []).append(reason)

    frontier: list[CellBest] = []
    anchors: list[tuple[CellBest, CellBest]] = []  # (cell whose larger LR may be chosen, its point)
    if rule.rule == "frontier":
        frontier = frontier_points(cells)
        rungs = sorted({c.model: c.params for c in cells}.items(), key=lambda t: (t[1], t[0]))
        order = [m for m, _ in rungs]
        for p in frontier:
            at = f"{p.compute:.3g} FLOPs"
            pick(p, p.best_lr, Reason(Why.LOSS_OPTIMAL, p.name, p.compute,
                                      f"{p.name} is on the pre-training frontier at {at}: the lowest loss "
                                      f"({p.loss:.4f}) for its compute"))
            anchors.append((p, p))
            if not rule.neighbours:
                continue
            i = order.index(p.model)
            for why, j, side in ((Why.LARGER_MODEL, i + 1, "up"), (Why.SMALLER_MODEL, i - 1, "down")):
                n = _neighbour(cells, p, order[j] if 0 <= j < len(order) else None, side, rule.within)
                word = "larger" if side == "up" else "smaller"
                if isinstance(n, str):
                    missing.append(f"no {word}-model neighbour of {p.name}: {n}")
                    continue
                pick(n, n.best_lr, Reason(why, p.name, p.compute,
                                          f"{n.name} is the {word}-model neighbour of frontier point {p.name}: "
                                          f"the next rung {side} at {'fewer' if side == 'up' else 'more'} epochs, "
                                          f"{n.compute / p.compute:.2g}x its compute, loss {n.loss:.4f}"))
    else:
        for name in rule.cells:
            cell = by_name.get(name)
            if cell is None:
                raise SpecError(f"expected a cell the pre-training ran to the end ({', '.join(sorted(by_name))}), "
                                f"got {name!r}", key="finetune.select.cells")
            pick(cell, cell.best_lr, Reason(Why.NAMED, cell.name, cell.compute,
                                            f"{cell.name} is named in select.cells; its best LR"))
            anchors.append((cell, cell))
    if rule.larger_lr:
        for cell, point in anchors:
            lr = _larger_lr(runs.groups(), cell)
            if lr is None:
                missing.append(f"no larger LR for {cell.name}: it ran no LR above its best ({cell.best_lr:g}) "
                               f"to the end")
                continue
            pick(cell, lr, Reason(Why.LARGER_LR, point.name, point.compute,
                                  f"{cell.name} at lr={lr:g}, the next larger LR it ran (best {cell.best_lr:g})"))
    if not picked:
        raise SpecError(f"expected finetune.select to pick at least one checkpoint from {where}, got none",
                        key="finetune.select")
    choices = [_choice(finished, key, reasons) for key, reasons in picked.items()]
    choices.sort(key=lambda c: (c.compute, c.params, c.epochs, c.lr))
    return Selection(tuple(choices), tuple(dict.fromkeys(missing)), tuple(p.name for p in frontier))


def _neighbour(cells: Sequence[CellBest], p: CellBest, rung: str | None, side: str, within: float
               ) -> CellBest | str:
    """The cell of `rung` on the right side of `p`'s budget nearest `p`'s compute, or why there is none."""
    if rung is None:
        return f"{p.model} is the {'largest' if side == 'up' else 'smallest'} rung that finished"
    fewer = side == "up"
    options = [c for c in cells if c.model == rung and math.isfinite(c.compute) and c.compute > 0
               and (c.epochs < p.epochs if fewer else c.epochs > p.epochs)]
    if not options:
        return f"{rung} finished no budget {'below' if fewer else 'above'} {p.epochs:g} epochs"
    best = min(options, key=lambda c: (abs(math.log(c.compute / p.compute)), c.epochs))
    ratio = best.compute / p.compute
    if not 1 / within <= ratio <= within:
        return (f"the nearest, {best.name}, costs {ratio:.2g}x its compute (more than {within:g}x away is not "
                f"about the same compute)")
    return best


def _larger_lr(groups: Mapping[tuple[str, float, float], list[Any]], cell: CellBest) -> float | None:
    lrs = sorted(lr for (m, e, lr), rs in groups.items()
                 if m == cell.model and e == cell.epochs and lr > cell.best_lr
                 and all(math.isfinite(r.val_loss) for r in rs))
    return lrs[0] if lrs else None


def _choice(finished: Sequence[Pretrained], key: tuple[str, float, float], reasons: list[Reason]) -> Choice:
    model, epochs, lr = key
    trials = tuple(sorted((t for t in finished if (t.model, t.epochs, t.lr) == key), key=lambda t: int(t.seed or 0)))
    assert trials, f"a chosen (cell, lr) {key} has finished trials"  # picked from cells of finished runs
    return Choice(model=model, params=int(trials[0].model_params or 0), epochs=epochs, lr=lr,
                  loss=sum(t.val_loss for t in trials) / len(trials),
                  compute=sum(t.flops or 0.0 for t in trials) / len(trials), trials=trials,
                  # its own frontier point first, then the points it is compared at, cheapest first
                  reasons=tuple(sorted(reasons, key=lambda r: (r.why is not Why.LOSS_OPTIMAL, r.compute))))


def require_checkpoints(selection: Selection, *, source: str = "") -> Selection:
    """The selection, once every chosen trial has a kept checkpoint recorded; else a one-line
    SpecError naming the runs without one and how to keep them."""
    lacking = [t for c in selection.choices for t in c.trials if not (t.checkpoint and t.checkpoint_sha256)]
    if not lacking:
        return selection
    names = ", ".join(f"{t.run_id or '?'} ({t.cell} lr={t.lr:g} seed {t.seed})" for t in lacking[:5])
    more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
    raise SpecError(f"expected kept checkpoints (tags {Tag.CHECKPOINT}, {Tag.CHECKPOINT_SHA256}) on the chosen "
                    f"pre-training runs of {source or 'the experiment'}, got none on {names}{more}; keep them by "
                    f"running the pre-training sweep with this raysweep (an ok trial records its final "
                    f"checkpoint) and keeping its --results folder", key="finetune.pretrained")
