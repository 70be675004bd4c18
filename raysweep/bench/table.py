"""A results table read from CSV: the ground truth the replay benchmark replays searchers against.

Columns: `model,epochs,lr,val_loss` are required; `model_params,seed,flops,core_hours` are used when
present, and `curve` (the validation loss at each evaluation point, `frac:loss;...`, frac = step /
total steps) for replaying partial training: a table without it holds only the final point (frac 1),
as before. One row is one finished (or diverged) trial; several seeds of one (model, epochs, lr) are
several rows. An empty, `inf` or `nan` val_loss is a diverged trial. Rungs are ordered by
`model_params` when that column exists, else by first appearance; budgets and LRs ascending.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from raysweep.core.errors import SpecError
from raysweep.core.space import Cell, Lattice
from raysweep.results.cells import loss as cell_loss
from raysweep.results.cells import number
from raysweep.results.csv_rows import read_rows
from raysweep.results.rows import REPLAY_REQUIRED, TrialRow, optional, parse_curve, status_of
from raysweep.search import pick_best


@dataclass(frozen=True)
class Gap:
    """How much worse one LR of a cell is than another, relative to the other's mean loss.

    `rel` is (mean loss at i - mean loss at j) / |mean loss at j| and `se` its standard error, both
    over the same runs: the seeds both LRs have when the table names seeds (a paired comparison:
    one seed is one init and data order), else every run of each (Welch). `df` is the degrees of
    freedom of that estimate. `se` is None with too few runs for one, or when a run diverged
    (`rel` is then inf).
    """

    rel: float
    se: float | None
    df: float | None
    pairs: int  # seeds both LRs have (0 when unpaired)

    def within_noise(self, level: float = 0.95) -> bool | None:
        """Whether the runs cannot tell the two LRs apart: the gap lies inside the two-sided
        `level` t-interval. None when there is no standard error to judge by; False when i diverged."""
        if not math.isfinite(self.rel):
            return False
        if self.se is None or self.df is None:
            return None
        if self.se == 0:
            return self.rel <= 0
        from scipy import stats  # here, not at import: scipy.stats takes a while to load

        return self.rel <= float(stats.t.ppf(0.5 + level / 2, self.df)) * self.se


@dataclass(frozen=True)
class Table:
    path: str
    lattice: Lattice
    runs: Mapping[tuple[Cell, int], tuple[TrialRow, ...]]  # (cell, lr index) -> one row per seed
    has_flops: bool
    n_rows: int
    sizes: Mapping[str, float] = field(default_factory=dict)  # model -> parameters (the model_params column)

    def mean_loss(self, cell: Cell, lr_index: int) -> float | None:
        """Mean loss over seeds (inf if any seed diverged); None when the table lacks the run."""
        rows = self.runs.get((cell, lr_index))
        if not rows:
            return None
        return sum(r.val_loss for r in rows) / len(rows)

    @property
    def has_curves(self) -> bool:
        """Whether any run holds a curve (else every run is seen only at its end)."""
        return any(r.curve for rows in self.runs.values() for r in rows)

    def fracs(self, cell: Cell, lr_index: int) -> tuple[float, ...]:
        """The run's evaluation points as fractions of its budget, ascending, always ending in 1.0:
        the points every seed's curve holds (seeds of one run share the schedule). (1.0,) without a
        curve (an old table) and () when the table lacks the run."""
        rows = self.runs.get((cell, lr_index))
        if not rows:
            return ()
        common = set.intersection(*({round(f, 6) for f, _ in r.curve if f < 1} for r in rows))
        return (*sorted(common), 1.0)

    def loss_at(self, cell: Cell, lr_index: int, frac: float, row: int | None = None) -> float | None:
        """What a searcher sees of the run stopped at `frac` of its budget: the loss at the last
        evaluation point at or before `frac`, the mean over seeds (inf if any seed had diverged by
        then), or only seed row `row`. At frac 1 this is the final loss (`mean_loss`). A seed whose
        curve ends before `frac` (a diverged run) counts as diverged; one with no point at or before
        `frac` gives None (nothing evaluated yet), as does a run the table lacks."""
        rows = self.runs.get((cell, lr_index))
        if not rows:
            return None
        picked = rows if row is None else (rows[row],)
        seen = []
        for r in picked:
            if frac >= 1 - 1e-9:
                seen.append(r.val_loss)
                continue
            before = [loss for f, loss in r.curve if f <= frac + 1e-9]
            if not before:
                return None
            # past the last point of a diverged run's curve, it had diverged
            seen.append(before[-1] if frac <= r.curve[-1][0] + 1e-9 or math.isfinite(r.val_loss) else math.inf)
        return sum(seen) / len(seen)

    def full_flops(self, cell: Cell) -> float:
        """One full trial's FLOPs in `cell`: the mean over its LRs that finished (a diverged run
        stopped early and spent less), else the most any run spent; 1.0 when the table holds no
        FLOPs (then a trial costs 1). The unit of `full trials per cell`."""
        finished = [f for i in range(len(self.lattice.lrs))
                    if (f := self.flops(cell, i)) > 0 and math.isfinite(self.mean_loss(cell, i) or math.inf)]
        if finished:
            return sum(finished) / len(finished)
        known = [f for i in range(len(self.lattice.lrs)) if (f := self.flops(cell, i)) > 0]
        return max(known, default=1.0)

    def cost(self, cell: Cell, lr_index: int, frac: float = 1.0) -> float:
        """The run trained from the start to `frac` of its budget, in full trials of its cell
        (`full_flops`): frac x its FLOPs for a run that finished; for one that diverged, frac of a
        full trial but no more than the FLOPs it spent before it diverged. frac alone when the table
        holds no FLOPs; 0 for a run the table lacks (it fails at once)."""
        if (cell, lr_index) not in self.runs:
            return 0.0
        flops, full = self.flops(cell, lr_index), self.full_flops(cell)
        if flops <= 0:
            return frac
        if math.isfinite(self.mean_loss(cell, lr_index) or math.inf):
            return frac * flops / full
        return min(frac, flops / full)

    def sample_loss(self, cell: Cell, lr_index: int, rng: random.Random) -> float | None:
        """The loss of one seed drawn at random; None when the table lacks the run."""
        rows = self.runs.get((cell, lr_index))
        return rng.choice(rows).val_loss if rows else None

    def duration(self, cell: Cell, lr_index: int) -> float:
        """A run's cost as the replay's clock sees it: mean core hours, else mean FLOPs, else 1."""
        rows = self.runs.get((cell, lr_index), ())
        for values in ([r.core_hours for r in rows], [r.flops for r in rows]):
            known = [v for v in values if v is not None]
            if known:
                return sum(known) / len(known)
        return 1.0 if rows else 0.0

    def flops(self, cell: Cell, lr_index: int) -> float:
        known = [r.flops for r in self.runs.get((cell, lr_index), ()) if r.flops is not None]
        return sum(known) / len(known) if known else 0.0

    def gap(self, cell: Cell, i: int, j: int) -> Gap | None:
        """The gap of LR index i over LR index j within a cell; None when either run is missing or
        j's mean loss is not a finite, non-zero number."""
        a, b = self.runs.get((cell, i)), self.runs.get((cell, j))
        if not a or not b:
            return None
        seeds_a, seeds_b = [r.seed for r in a], [r.seed for r in b]
        paired = (
            None not in seeds_a + seeds_b
            and len(set(seeds_a)) == len(seeds_a)
            and len(set(seeds_b)) == len(seeds_b)
            and bool(set(seeds_a) & set(seeds_b))
        )
        if paired:
            by_seed = {r.seed: r.val_loss for r in b}
            pairs = [(r.val_loss, by_seed[r.seed]) for r in a if r.seed in by_seed]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            xs, ys = [r.val_loss for r in a], [r.val_loss for r in b]
        ref = sum(ys) / len(ys)
        if not math.isfinite(ref) or ref == 0:
            return None
        if not all(map(math.isfinite, xs)):
            return Gap(math.inf, None, None, len(xs) if paired else 0)
        rel = (sum(xs) / len(xs) - ref) / abs(ref)
        if paired:
            n = len(xs)
            diffs = [(x - y) / abs(ref) for x, y in zip(xs, ys, strict=True)]
            if n < 2:
                return Gap(rel, None, None, n)
            return Gap(rel, math.sqrt(_var(diffs) / n), n - 1, n)
        if len(xs) < 2 or len(ys) < 2:
            return Gap(rel, None, None, 0)
        va, vb = _var(xs) / len(xs) / ref**2, _var(ys) / len(ys) / ref**2
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(xs) - 1) + vb**2 / (len(ys) - 1)) if va + vb > 0 else len(xs) + len(ys) - 2
        return Gap(rel, se, df, 0)

    def best(self, cell: Cell, tie_tolerance: float = 0.0) -> int | None:
        """The grid index of the cell's best mean loss (ties to the larger LR); None without data."""
        losses = {}
        for i in range(len(self.lattice.lrs)):
            loss = self.mean_loss(cell, i)
            if loss is not None:
                losses[i] = loss
        return pick_best(losses, tie_tolerance) if losses else None


def _var(xs: list[float]) -> float:
    """Sample variance (n - 1 in the denominator)."""
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def load_table(path: str) -> Table:
    """Read and check a results CSV; every problem is a `SpecError` naming the file, line and column."""
    header, raw = read_rows(path, required=REPLAY_REQUIRED, optional=optional(REPLAY_REQUIRED))

    params: dict[str, float] = {}
    parsed: list[TrialRow] = []
    seeded = "seed" in header
    for rec, line in raw:
        model = rec["model"]
        if not model:
            raise SpecError(
                "expected a model name, got an empty value", file=path, key=f"line {line}, column model"
            )
        epochs = _number(rec["epochs"], path, line, "epochs", positive=True)
        lr = _number(rec["lr"], path, line, "lr", positive=True)
        loss = cell_loss(rec["val_loss"], file=path, key=f"line {line}, column val_loss")
        flops = _optional(rec.get("flops", ""), path, line, "flops")
        hours = _optional(rec.get("core_hours", ""), path, line, "core_hours")
        size = _optional(rec.get("model_params", ""), path, line, "model_params")
        if size is not None:
            params.setdefault(model, size)
        seed = (rec.get("seed") or None) if seeded else None
        try:
            curve = parse_curve(rec.get("curve", ""))
        except ValueError as e:
            raise SpecError(str(e), file=path, key=f"line {line}, column curve") from None
        parsed.append(TrialRow(model=model, epochs=epochs, lr=lr, status=status_of(loss), val_loss=loss, flops=flops,
                               core_hours=hours, seed=seed, curve=curve))

    models = list(dict.fromkeys(p.model for p in parsed))  # first appearance
    if "model_params" in header:
        unsized = [m for m in models if m not in params]
        if unsized:
            raise SpecError(
                f"expected a number for every model, got none for {unsized}",
                file=path,
                key="column model_params",
            )
        models.sort(key=lambda m: params[m])  # stable: equal sizes keep their first-appearance order
    lattice = Lattice(
        models=tuple(models),
        epochs=tuple(sorted({p.epochs for p in parsed})),
        lrs=tuple(sorted({p.lr for p in parsed})),
    )
    runs: dict[tuple[Cell, int], list[TrialRow]] = {}
    for row in parsed:
        runs.setdefault((lattice.cell_of(row.model, row.epochs), lattice.lr_index(row.lr)), []).append(row)
    return Table(
        path=path,
        lattice=lattice,
        runs={k: tuple(v) for k, v in runs.items()},
        has_flops="flops" in header,
        n_rows=len(parsed),
        sizes=params,
    )


def _number(text: str, path: str, line: int, column: str, *, positive: bool = False) -> float:
    return number(text, file=path, key=f"line {line}, column {column}", positive=positive)


def _optional(text: str, path: str, line: int, column: str) -> float | None:
    if not text:
        return None
    value = _number(text, path, line, column)
    if value < 0:
        raise SpecError(
            f"expected a number >= 0, got {text!r}", file=path, key=f"line {line}, column {column}"
        )
    return value

