"""The peers a Ray Tune user would pick instead of raysweep's searcher, run as their own code over a
results table with curves (issue 16): Tune's `ASHAScheduler` and `HyperBandScheduler`, Optuna's TPE
with `HyperbandPruner` or `SuccessiveHalvingPruner`, and NePS's PriorBand (`raysweep.bench.priorband`,
run in NePS's own environment).

Each peer searches every cell on its own over the cell's LR grid (a Tune user's `grid_search` over the
LRs, or an Optuna study), as one experiment per cell, one cell after another. Training is replayed:
a trial reaches the table's evaluation points one by one (a trial's `training_iteration` k is its
k-th point, so `max_t` is the number of points), each point costing its share of the trial's FLOPs
(`Table.cost`), and the loss the scheduler or pruner sees there is the table's (`Table.loss_at`).
A run the table lacks fails at its start, costing nothing; a run that diverged ends with an error
where its curve goes non-finite.

- Tune: the scheduler is driven through its own interface (`on_trial_add`, `on_trial_result` answered
  CONTINUE / PAUSE / STOP, `choose_trial_to_run`, `on_trial_complete` / `on_trial_remove` /
  `on_trial_error`) by a small stand-in for Tune's controller that does what `TuneController` does
  with each answer (`stop_trial`, pausing); `concurrency` trials in flight, the earliest to reach its
  next point first. The cell settles on the trial with the lowest loss among those that ran the
  whole budget (else the lowest last-reported loss): the model a user would keep.
- Optuna: `study.ask()` / `trial.suggest_categorical` over the grid / `trial.report` +
  `trial.should_prune()` at every point / `study.tell`, one trial at a time, `trials_per_cell`
  trials (default: the grid's size); a diverged run is told FAIL. The cell settles on
  `study.best_trial` (complete trials only; else the lowest last-reported loss).

Ray and Optuna load here only when a peer runs. The private part relied on: a trial stand-in with
`trial_id`, `status`, `is_saving`, `last_result` and Tune's `Trial` status names (pinned in
tests/bench/test_peers.py).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raysweep.bench.table import Table
from raysweep.core.space import Cell

METRIC, TIME = "val_loss", "training_iteration"


@dataclass(frozen=True)
class Peer:
    """One peer method: its library, the scheduler or pruner and its options (empty: the defaults)."""

    name: str
    library: str  # "tune" | "optuna" | "neps"
    kind: str  # tune: "asha" | "hyperband"; optuna: "hyperband" | "sh"; neps: "priorband"
    options: tuple[tuple[str, Any], ...] = ()
    note: str = ""


PEER_TABLE: tuple[Peer, ...] = (
    Peer("asha", "tune", "asha", note="ASHAScheduler, defaults (reduction_factor 4, grace_period 1)"),
    Peer("asha-rf2", "tune", "asha", (("reduction_factor", 2),),
         note="ASHAScheduler, reduction_factor 2 (7 LRs: 7 -> 4 -> 2 -> 1)"),
    Peer("hyperband", "tune", "hyperband", note="HyperBandScheduler, defaults (reduction_factor 3)"),
    Peer("hyperband-rf2", "tune", "hyperband", (("reduction_factor", 2),),
         note="HyperBandScheduler, reduction_factor 2"),
    Peer("tpe-hyperband", "optuna", "hyperband", note="Optuna TPE + HyperbandPruner, defaults"),
    Peer("tpe-sh", "optuna", "sh", note="Optuna TPE + SuccessiveHalvingPruner, defaults"),
    Peer("tpe-sh-rf2", "optuna", "sh", (("reduction_factor", 2),),
         note="Optuna TPE + SuccessiveHalvingPruner, reduction_factor 2"),
    Peer("priorband", "neps", "priorband", (("budget", 2.0), ("eta", 3)),
         note="NePS PriorBand (hyperband base, eta 3, default prior confidence), prior at the monotone "
              "bound, 2 full trials per cell"),
    Peer("priorband-4", "neps", "priorband", (("budget", 4.0), ("eta", 3)),
         note="NePS PriorBand as `priorband`, 4 full trials per cell"),
)
PEERS = {p.name: p for p in PEER_TABLE}


@dataclass
class CellRun:
    """One peer's search of one cell: trials started, cost in full trials of the cell, FLOPs, time
    (the table's duration units), runs the table lacked, and the LR index it settled on."""

    trials: int
    cost: float
    flops: float
    makespan: float
    missing: int
    settled: int
    stops: list[tuple[int, float]]  # (LR index, fraction of the budget it ran) per trial, in start order


def draw_rows(table: Table, name: str, seed: int, sample_seeds: bool) -> dict[Cell, dict[int, int | None]]:
    """Per cell, the seed row each LR's losses come from in one replay (None: the mean over seeds)."""
    rng = random.Random(f"{seed}/{name}")
    lat = table.lattice
    return {cell: {i: (rng.randrange(len(table.runs[(cell, i)])) if sample_seeds else None)
                   for i in range(len(lat.lrs)) if (cell, i) in table.runs} for cell in lat.cells()}


def replay_peer_runs(table: Table, name: str, seeds: list[int], *, concurrency: int = 2, sample_seeds: bool = False,
                     trials_per_cell: int | None = None, start_lr: float | None = None) -> list[dict[str, Any]]:
    """`replay_peer` once per seed; PriorBand's replays go to NePS's environment in one batch, with the
    monotone rule's prior (`start_lr` for the first cell, default the grid's middle)."""
    peer = PEERS[name]
    if peer.library != "neps":
        return [replay_peer(table, name, concurrency=concurrency, seed=s, sample_seeds=sample_seeds,
                            trials_per_cell=trials_per_cell) for s in seeds]
    from raysweep.bench.priorband import replay_priorband

    lrs = table.lattice.lrs
    opts = dict(peer.options)
    return replay_priorband(table, [(s, draw_rows(table, name, s, sample_seeds)) for s in seeds],
                            budget=float(opts["budget"]), eta=int(opts["eta"]),
                            start_lr=start_lr if start_lr is not None else lrs[len(lrs) // 2])


def replay_peer(table: Table, name: str, *, concurrency: int = 2, seed: int = 0, sample_seeds: bool = False,
                trials_per_cell: int | None = None) -> dict[str, Any]:
    """One replay of peer `name` over every cell of the table, in the shape `scores.summarise` reads
    (`trials`, `flops`, `full_trials`, `makespan`, `missing`, `settled`). With `sample_seeds`, each
    run's losses are one seed's (drawn once per run), else the mean over seeds. PriorBand goes
    through `replay_peer_runs`, which batches its replays into one NePS process."""
    peer = PEERS[name]
    if peer.library == "neps":
        return replay_peer_runs(table, name, [seed], sample_seeds=sample_seeds)[0]
    lat = table.lattice
    drawn = draw_rows(table, name, seed, sample_seeds)
    out: dict[str, Any] = {"trials": 0, "flops": 0.0, "full_trials": 0.0, "makespan": 0.0, "missing": 0,
                           "settled": {}}
    for cell in lat.cells():
        rows = drawn[cell]
        if peer.library == "tune":
            run = tune_cell(table, cell, peer, concurrency=concurrency, rows=rows)
        else:
            run = optuna_cell(table, cell, peer, seed=seed, rows=rows, n_trials=trials_per_cell or len(lat.lrs))
        out["trials"] += run.trials
        out["flops"] += run.flops
        out["full_trials"] += run.cost
        out["makespan"] += run.makespan
        out["missing"] += run.missing
        out["settled"][cell] = run.settled
    return out


def cell_fracs(table: Table, cell: Cell) -> tuple[float, ...]:
    """The cell's evaluation points (fractions of the budget): the longest list among its runs."""
    lists = [table.fracs(cell, i) for i in range(len(table.lattice.lrs))]
    return max(lists, key=len) if any(lists) else (1.0,)


class _Meter:
    """What one cell's replay has spent: cost in full trials, FLOPs, and per trial how far it ran."""

    def __init__(self, table: Table, cell: Cell) -> None:
        self.table, self.cell = table, cell
        self.cost = self.flops = 0.0
        self.ran: dict[int, float] = {}  # trial number -> fraction of its budget trained

    def train(self, trial: int, i: int, start: float, end: float) -> float:
        """Train trial number `trial` (LR index i) from `start` to `end` of its budget; its duration."""
        step = self.table.cost(self.cell, i, end) - self.table.cost(self.cell, i, start)
        self.cost += step
        self.flops += step * self.table.full_flops(self.cell) if self.table.has_flops else 0.0
        self.ran[trial] = end
        return self.table.duration(self.cell, i) * (end - start)


# Ray Tune ----------------------------------------------------------------------------------------

class _Trial:
    """What Tune's schedulers read of a trial: its id, status, `is_saving`, `last_result`."""

    def __init__(self, n: int, lr_index: int, status: str) -> None:
        self.trial_id = f"t{n:03d}"
        self.n, self.lr_index, self.status = n, lr_index, status
        self.is_saving = False
        self.last_result: dict[str, Any] = {}
        self.iteration = 0  # evaluation points reached

    def __repr__(self) -> str:
        return self.trial_id


class _Controller:
    """The part of Tune's `TuneController` the schedulers call back: `get_trials`, `stop_trial`."""

    def __init__(self, scheduler: Any, trials: list[_Trial], trial_cls: Any) -> None:
        self.scheduler, self.trials, self.T = scheduler, trials, trial_cls

    def get_trials(self) -> list[_Trial]:
        return self.trials

    def stop_trial(self, trial: _Trial) -> None:
        """As `TuneController.stop_trial`: a paused or pending trial is removed from the scheduler, a
        running one completed with its last result."""
        if trial.status in (self.T.ERROR, self.T.TERMINATED):
            return
        if trial.status in (self.T.PENDING, self.T.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, dict(trial.last_result))
        trial.status = self.T.TERMINATED


def make_tune_scheduler(peer: Peer, max_t: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    cls: Callable[..., Any] = ASHAScheduler if peer.kind == "asha" else HyperBandScheduler
    scheduler = cls(time_attr=TIME, max_t=max_t, **dict(peer.options))
    scheduler.set_search_properties(METRIC, "min")
    return scheduler


def tune_cell(table: Table, cell: Cell, peer: Peer, *, concurrency: int = 2,
              rows: dict[int, int | None] | None = None, scheduler: Any = None) -> CellRun:
    """Drive a Tune scheduler over one cell's LR grid (trials added in grid order, as a grid search
    over the LRs adds them); `scheduler` overrides the one `peer` names (a test's)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    rows = rows if rows is not None else {i: None for i in range(len(table.lattice.lrs)) if (cell, i) in table.runs}
    fracs = cell_fracs(table, cell)
    scheduler = scheduler or make_tune_scheduler(peer, len(fracs))
    trials = [_Trial(n, i, Trial.PENDING) for n, i in enumerate(range(len(table.lattice.lrs)))]
    ctrl = _Controller(scheduler, trials, Trial)
    for t in trials:
        scheduler.on_trial_add(ctrl, t)
    meter = _Meter(table, cell)
    events: list[tuple[float, int, _Trial]] = []  # (time it reaches its next point, tie-break, trial)
    now, seq, missing = 0.0, 0, 0
    final: dict[int, float] = {}  # LR index -> last loss seen

    def advance(t: _Trial) -> None:
        nonlocal seq
        start = fracs[t.iteration - 1] if t.iteration else 0.0
        took = meter.train(t.n, t.lr_index, start, fracs[t.iteration])
        seq += 1
        heapq.heappush(events, (now + took, seq, t))

    while True:
        while sum(t.status == Trial.RUNNING for t in trials) < concurrency:
            t = scheduler.choose_trial_to_run(ctrl)
            if t is None:
                break
            if t.lr_index not in rows:  # the table lacks the run: it fails as it starts
                missing += 1
                t.status = Trial.ERROR
                scheduler.on_trial_error(ctrl, t)
                continue
            t.status = Trial.RUNNING
            advance(t)
        if not events:
            break
        now, _, t = heapq.heappop(events)
        if t.status != Trial.RUNNING:  # stopped by the scheduler while it trained (HyperBand)
            continue
        t.iteration += 1
        loss = table.loss_at(cell, t.lr_index, fracs[t.iteration - 1], rows[t.lr_index])
        if loss is None or not math.isfinite(loss):  # diverged: the trainable raises
            final[t.lr_index] = math.inf
            t.status = Trial.ERROR
            scheduler.on_trial_error(ctrl, t)
            continue
        t.last_result = {TIME: t.iteration, METRIC: loss}
        final[t.lr_index] = loss
        decision = scheduler.on_trial_result(ctrl, t, dict(t.last_result))
        if t.status != Trial.RUNNING:  # the scheduler stopped it from inside (HyperBand's halving)
            continue
        if decision == TrialScheduler.STOP or t.iteration == len(fracs):  # stopped, or the trainable returned
            ctrl.stop_trial(t)
        elif decision == TrialScheduler.PAUSE:
            t.status = Trial.PAUSED
        else:
            advance(t)
    full = {t.lr_index: final[t.lr_index] for t in trials if t.iteration == len(fracs) and t.lr_index in final}
    pool = full if any(math.isfinite(v) for v in full.values()) else final
    return CellRun(trials=sum(t.iteration > 0 or t.status == Trial.ERROR for t in trials), cost=meter.cost,
                   flops=meter.flops, makespan=now, missing=missing, settled=_settle(pool),
                   stops=[(t.lr_index, meter.ran.get(t.n, 0.0)) for t in trials])


def _settle(losses: dict[int, float]) -> int:
    """The LR index with the lowest loss (ties to the larger LR); 0 when nothing was seen."""
    if not losses:
        return 0
    return min(losses, key=lambda i: (losses[i], -i))


# Optuna ------------------------------------------------------------------------------------------

def make_pruner(peer: Peer) -> Any:
    import optuna

    cls = optuna.pruners.HyperbandPruner if peer.kind == "hyperband" else optuna.pruners.SuccessiveHalvingPruner
    return cls(**dict(peer.options))


def optuna_cell(table: Table, cell: Cell, peer: Peer, *, seed: int = 0, n_trials: int = 7,
                rows: dict[int, int | None] | None = None, pruner: Any = None,
                study_name: str = "raysweep-peer") -> CellRun:
    """An Optuna study over one cell's LR grid with TPE and the peer's pruner (`pruner` overrides
    it), one trial at a time, each reporting the table's loss at every evaluation point. The study
    is named: HyperbandPruner assigns a trial's bracket by hashing the study's name and the trial's
    number, so a fixed name makes the replay repeatable."""
    import optuna

    lrs = table.lattice.lrs
    rows = rows if rows is not None else {i: None for i in range(len(lrs)) if (cell, i) in table.runs}
    fracs = cell_fracs(table, cell)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=pruner or make_pruner(peer), study_name=study_name)
    meter = _Meter(table, cell)
    now, missing = 0.0, 0
    last: dict[int, float] = {}
    for n in range(n_trials):
        trial = study.ask()
        i = lrs.index(trial.suggest_categorical("lr", list(lrs)))
        if i not in rows:
            missing += 1
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        for k, frac in enumerate(fracs, 1):
            now += meter.train(n, i, fracs[k - 2] if k > 1 else 0.0, frac)
            loss = table.loss_at(cell, i, frac, rows[i])
            if loss is None or not math.isfinite(loss):  # diverged: the objective raises
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                break
            last[i] = loss
            trial.report(loss, k)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, loss)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    settled = lrs.index(study.best_trial.params["lr"]) if done else _settle(last)
    return CellRun(trials=n_trials, cost=meter.cost, flops=meter.flops, makespan=now, missing=missing,
                   settled=settled, stops=[(lrs.index(t.params["lr"]), meter.ran.get(t.number, 0.0))
                                           for t in study.trials])
