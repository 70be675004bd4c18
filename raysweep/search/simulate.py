"""Drive a `CellSearcher` without a cluster: a discrete-event simulation of a sweep.

`concurrency` slots run trials; whenever a slot is free the searcher is asked for a trial, exactly
as the Ray Tune adapter does, and the trial that would end first completes first. The replay
benchmark and the tests use it; nothing here knows how a trial's result is produced.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from raysweep.core.space import Cell
from raysweep.search.base import FINISHED, CellSearcher, Outcome, Proposal

Evaluate = Callable[[Cell, float], Outcome]
Duration = Callable[[Cell, float], float]


@dataclass(frozen=True)
class SimTrial:
    trial_id: str
    proposal: Proposal
    outcome: Outcome
    start: float
    end: float


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
) -> SimRun:
    """Run `searcher` to FINISHED; `duration(cell, lr)` is a trial's run time (1 when None)."""
    if concurrency < 1:
        raise ValueError(f"`concurrency >= 1` must hold, but got concurrency={concurrency}")
    running: list[tuple[float, int, str, Proposal, Outcome, float]] = []
    done: list[SimTrial] = []
    clock, issued, finished, peak = 0.0, 0, False, 0
    while True:
        while not finished and len(running) < concurrency:
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
                heapq.heappush(running, (clock + took, issued, trial_id, proposal, outcome, clock))
                issued += 1
                peak = max(peak, len(running))
        if not running:
            if finished:
                break
            raise RuntimeError("the searcher returned None with no trial running: it would wait forever")
        end, _, trial_id, proposal, outcome, start = heapq.heappop(running)
        clock = end
        searcher.on_trial_complete(trial_id, outcome)
        done.append(SimTrial(trial_id, proposal, outcome, start, end))
    return SimRun(tuple(done), searcher.settled(), clock, peak)
