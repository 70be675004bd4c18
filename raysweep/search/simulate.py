"""Drive a `CellSearcher` without a cluster: a discrete-event simulation of a sweep.

`concurrency` slots run trials; whenever a slot is free the searcher is asked for a trial, exactly
as the Ray Tune adapter does, and the trial that would end first completes first. The replay
benchmark and the tests use it; nothing here knows how a trial's result is produced.

With `curve`, a trial also reports its evaluation points on the way (at `start + frac x duration`,
in time order with every other trial's events), as a running trial reports to Tune: the searcher's
`on_trial_result` sees each one, and a searcher with `search.early_stop` may stop the trial there.
A stopped trial frees its slot at once, has no outcome (the searcher has recorded the decision) and
ran `frac` of its budget.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from raysweep.core.space import Cell
from raysweep.search.base import FINISHED, CellSearcher, Outcome, Proposal
from raysweep.search.early_stop import EarlyStop

Evaluate = Callable[[Cell, float], Outcome]
Duration = Callable[[Cell, float], float]
# the evaluation points a trial reports before its end: (fraction of its budget in (0, 1), val loss)
Curve = Callable[[Cell, float], Sequence[tuple[float, float]]]
STEPS = 1_000_000  # a replayed trial's steps: a point at fraction f is step round(f x STEPS)


@dataclass(frozen=True)
class SimTrial:
    trial_id: str
    proposal: Proposal
    outcome: Outcome | None  # None: stopped early (`stopped`), the searcher learnt no outcome
    start: float
    end: float
    frac: float = 1.0  # the share of its budget it ran
    stopped: EarlyStop | None = None


@dataclass(frozen=True)
class SimRun:
    trials: tuple[SimTrial, ...]  # in completion order
    settled: dict[Cell, float]
    makespan: float  # simulated time from the first trial's start to the last one's end
    max_in_flight: int


def simulate(
    searcher: CellSearcher,
    evaluate: Evaluate,
    *,
    concurrency: int = 1,
    duration: Duration | None = None,
    max_trials: int = 100_000,
    id_prefix: str = "t",
    curve: Curve | None = None,
) -> SimRun:
    """Run `searcher` to FINISHED; `duration(cell, lr)` is a trial's run time (1 when None);
    `curve(cell, lr)` the evaluation points each trial reports on the way (none when None)."""
    if concurrency < 1:
        raise ValueError(f"`concurrency >= 1` must hold, but got concurrency={concurrency}")
    # events: (time, order, trial number, frac, loss); frac 1.0 is the trial's end
    running: list[tuple[float, int, int, float, float]] = []
    live: dict[int, tuple[str, Proposal, Outcome, float, float]] = {}  # number -> id, proposal, outcome, start, took
    done: list[SimTrial] = []
    clock, issued, finished, peak, order = 0.0, 0, False, 0, 0
    while True:
        while not finished and len(live) < concurrency:
            trial_id = f"{id_prefix}{issued:05d}"
            proposal = searcher.suggest(trial_id)
            if proposal is FINISHED:
                finished = True
            elif proposal is None:
                break
            else:
                assert isinstance(proposal, Proposal), f"suggest returned {proposal!r}"
                if issued >= max_trials:
                    raise RuntimeError(f"the searcher proposed more than {max_trials} trials")
                outcome = evaluate(proposal.cell, proposal.lr)
                took = 1.0 if duration is None else duration(proposal.cell, proposal.lr)
                points = [] if curve is None else [(f, v) for f, v in curve(proposal.cell, proposal.lr) if 0 < f < 1]
                for f, v in [*sorted(points), (1.0, outcome.val_loss)]:
                    heapq.heappush(running, (clock + f * took, order, issued, f, v))
                    order += 1
                live[issued] = (trial_id, proposal, outcome, clock, took)
                issued += 1
                peak = max(peak, len(live))
        if not live:
            if finished:
                break
            raise RuntimeError("the searcher returned None with no trial running: it would wait forever")
        at, _, number, frac, loss = heapq.heappop(running)
        if number not in live:  # an event of a trial stopped earlier
            continue
        clock = at
        trial_id, proposal, outcome, start, took = live[number]
        if frac < 1:
            step = round(frac * STEPS)
            stop = searcher.on_trial_result(trial_id, step=step, val_loss=loss, flops=frac, total_steps=STEPS)
            if stop is not None:
                del live[number]
                done.append(SimTrial(trial_id, proposal, None, start, at, frac=frac, stopped=stop))
            continue
        del live[number]
        searcher.on_trial_complete(trial_id, outcome)
        done.append(SimTrial(trial_id, proposal, outcome, start, at))
    return SimRun(tuple(done), searcher.settled(), clock, peak)
