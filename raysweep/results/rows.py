"""One finished trial as a row, and the one column list of a results table.

`TrialRow` is what every reader of finished trials holds: the sweep's closing summary, `raysweep
table` (read back from MLflow), the analysis (`raysweep.analysis.Runs`) and the searcher replay
(`raysweep.bench.table`). `COLUMNS` is the results table's header; each reader names the part of
it that it needs (`ANALYSIS_REQUIRED`, `REPLAY_REQUIRED`) here, not in its own module.

Plain Python: no torch, Ray, MLflow or Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from raysweep.core.records import TrialStatus, cell_name

# The results table `raysweep table` writes, in order. One row is one finished (or diverged) trial;
# several seeds of one (model, epochs, lr) are several rows.
# `curve` (optional, issue 16) holds the validation loss at every evaluation point, `frac:loss;...`
# with frac = step / total steps (`format_curve`); a table without it holds only the final point.
COLUMNS: Final = ("model", "model_params", "epochs", "lr", "seed", "val_loss", "flops", "core_hours", "curve")
ANALYSIS_REQUIRED: Final = ("model", "model_params", "epochs", "lr", "val_loss", "flops")  # fits need size and cost
REPLAY_REQUIRED: Final = ("model", "epochs", "lr", "val_loss")  # a searcher replay needs only the losses


def optional(required: Sequence[str]) -> tuple[str, ...]:
    """The columns a reader that needs `required` also uses when a table has them."""
    return tuple(c for c in COLUMNS if c not in required)


@dataclass(frozen=True)
class TrialRow:
    """One finished trial. Fields past `run_id` are known where the source holds them."""

    model: str  # the rung's name
    epochs: float  # the epoch budget
    lr: float
    status: str  # a TrialStatus value: ok | diverged | failed
    val_loss: float  # +inf unless ok
    val_acc: float = math.nan
    flops: float | None = 0.0  # training FLOPs; None where a table does not hold them
    run_id: str = ""  # the MLflow child run, where there is one
    model_params: int | None = None  # N, measured from the built model
    seed: str | None = None  # pairs runs of one cell across LRs (same init and data order); None: not recorded
    core_hours: float | None = None  # measured device time; None where not recorded
    sweep: str = ""  # the MLflow parent run's name (read back from MLflow)
    parent: str = ""  # the MLflow parent run's id
    recipe: tuple[tuple[str, str], ...] = ()  # what makes two sweeps one study (results.mlflow_rows.RECIPE_PARAMS)
    # what a later stage (fine-tuning) needs of a pre-training trial, read back from MLflow
    trial_key: str = ""  # TrialKey.token()
    checkpoint: str = ""  # Tag.CHECKPOINT: the kept final checkpoint's folder; empty when none was recorded
    checkpoint_sha256: str = ""  # Tag.CHECKPOINT_SHA256
    family: str = ""  # the ladder family the run records
    shape: tuple[int, int, int] = (0, 0, 0)  # (classes, channels, image size) the model was built at; 0: unknown
    # the validation loss at each evaluation point: (step / total steps, loss), ascending; () where not recorded
    curve: tuple[tuple[float, float], ...] = ()
    # the LR grid of the spec the run was in: (lr.low, lr.high, lr.factor); () where not recorded (tables)
    lr_grid: tuple[float, float, float] | tuple[()] = ()

    @property
    def cell(self) -> str:
        return cell_name(self.model, self.epochs)

    @property
    def finished(self) -> bool:
        """Whether the trial says something about its LR (ok or diverged)."""
        status = TrialStatus.parse(self.status)
        return status is not None and status.finished


def status_of(loss: float) -> str:
    """The status of a table row, which holds only a loss: inf (or NaN, empty) means it diverged."""
    return TrialStatus.OK.value if math.isfinite(loss) else TrialStatus.DIVERGED.value


def table_cells(row: TrialRow) -> list[str]:
    """A row as `raysweep table` writes it under COLUMNS: 6 significant figures, a diverged run's
    loss as inf, unknown values empty."""
    def num(value: float | None) -> str:
        return "" if value is None else f"{value:.6g}"

    return [row.model, "" if row.model_params is None else str(row.model_params), f"{row.epochs:g}", f"{row.lr:g}",
            row.seed or "", f"{row.val_loss:.6g}", num(row.flops), num(row.core_hours), format_curve(row.curve)]


def format_curve(points: Iterable[tuple[float, float]]) -> str:
    """A curve as the `curve` cell holds it: `frac:loss` pairs joined by `;`, 6 significant figures
    (a diverged point's loss as inf)."""
    return ";".join(f"{frac:.6g}:{loss:.6g}" for frac, loss in points)


def parse_curve(text: str) -> tuple[tuple[float, float], ...]:
    """The points of a `curve` cell (`format_curve`), ascending in frac; () for an empty cell.
    A ValueError says what is wrong: a pair without `:`, a frac outside (0, 1], a repeated frac, or
    a NaN loss (an empty loss or inf means the run had diverged by then)."""
    points: dict[float, float] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        frac_text, sep, loss_text = part.partition(":")
        if not sep:
            raise ValueError(f"expected frac:loss pairs separated by ';', got {part!r}")
        frac = float(frac_text)
        loss = float(loss_text) if loss_text.strip() else math.inf
        if not 0 < frac <= 1 + 1e-9:
            raise ValueError(f"expected a fraction of the budget in (0, 1], got {frac_text!r}")
        if math.isnan(loss):
            raise ValueError(f"expected a loss (a number or inf), got {loss_text!r}")
        if frac in points:
            raise ValueError(f"expected each fraction once, got {frac_text!r} twice")
        points[min(frac, 1.0)] = loss
    return tuple(sorted(points.items()))


def write_table(path: str, rows: Iterable[Sequence[object]]) -> None:
    """Write a results table: the COLUMNS header, then one line per row of cells (`table_cells`)."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for cells in rows:
            w.writerow(cells)


@dataclass(frozen=True)
class FinetuneRow:
    """One finished fine-tuning trial (`raysweep finetune`), as the analysis of Figure 1 and finding 4
    reads it back from MLflow. A from-scratch baseline run has no source (`source_cell` empty)."""

    model: str  # the rung
    lr: float  # the fine-tuning LR
    seed: int  # the fine-tuning seed; pairs runs across checkpoints in the paired test
    repeats: int  # repeated augmentation's k (1: off)
    status: str  # a TrialStatus value
    top1: float  # downstream top-1 accuracy on the held-out split (NaN unless ok)
    loss: float  # downstream validation loss (+inf unless ok)
    flops: float  # the fine-tuning run's own FLOPs
    pretrain_flops: float  # the source's pre-training FLOPs (0 for the baseline)
    core_hours: float = math.nan
    pretrain_core_hours: float = math.nan
    source_cell: str = ""  # the pre-training cell, model@epochs; "" for the baseline
    source_lr: float = math.nan  # the pre-training LR (NaN for the baseline)
    pretrain_loss: float = math.nan  # the source's pre-training validation loss
    reasons: tuple[tuple[str, str], ...] = ()  # (why, frontier point cell): finetune.select.Why values
    run_id: str = ""
    source_run: str = ""
    source_trial_key: str = ""
    finetune_key: str = ""
    sweep: str = ""
    parent: str = ""

    @property
    def baseline(self) -> bool:
        return not self.source_cell

    @property
    def source(self) -> str:
        """The checkpoint's name, `cell lr=X`, or `<rung> from scratch`."""
        return f"{self.model} from scratch" if self.baseline else f"{self.source_cell} lr={self.source_lr:g}"

    @property
    def error(self) -> float:
        """Top-1 error (NaN unless ok)."""
        return 1.0 - self.top1 if self.status == TrialStatus.OK else math.nan
