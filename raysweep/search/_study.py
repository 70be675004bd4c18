"""Optuna storage plumbing shared by the Optuna-backed searchers.

How a raysweep trial reads in a study, so the study makes sense on its own (in `optuna-dashboard`):
- params `cell` (categorical, the cell's name, prior searchers only) and `lr` (log-float on the grid);
- user attrs `reason` (why it was proposed), `trial_id` (the driver's id) and `status`
  ('ok' | 'diverged' | 'failed' | 'interrupted');
- COMPLETE with the validation loss as value when it finished; FAIL otherwise. Only a 'diverged'
  trial counts against its LR (as an infinite loss). A 'failed' one (an exception, OOM, a worker
  group that did not start, preemption) says nothing about its LR: its (cell, lr) is proposed again,
  up to `max_retries` times, after which it counts as diverged so that a sweep cannot hang on it.
  A trial left RUNNING by a driver that died is marked FAIL with status 'interrupted' when the next
  driver opens the study and is proposed again without counting toward that limit.
- study user attrs `raysweep.*` record the searcher and lattice; reopening a study with a different
  one is an error rather than a silent mix of two searches.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from raysweep.config import SearchSpec
from raysweep.core.records import StudyAttr, TrialStatus
from raysweep.core.space import Lattice
from raysweep.search._storage import PatientRDBStorage, is_server_url, patient_engine_kwargs
from raysweep.search.base import Outcome, Proposal

INTERRUPTED = "interrupted"
DIVERGED = "diverged"
EARLY_STOPPED = TrialStatus.STOPPED.value  # search.early_stop stopped it (PRUNED)
MAX_RETRIES = SearchSpec.max_retries  # default: a failed (cell, lr) is proposed again this many times


def open_storage(url: str | None) -> BaseStorage:
    """The storage at `url` (e.g. `sqlite:////abs/path/optuna.db`), or a fresh in-memory one.

    A database server's storage reconnects after a restart of the server (see `_storage`)."""
    if url is not None and is_server_url(url):
        return optuna.storages.get_storage(
            PatientRDBStorage(url, engine_kwargs=patient_engine_kwargs(url)))
    return optuna.storages.get_storage(url)


def open_study(
    storage: BaseStorage, name: str, sampler: optuna.samplers.BaseSampler, attrs: Mapping[str, Any]
) -> optuna.Study:
    """Create the study or load it (with a new sampler: Optuna does not persist samplers).

    `attrs` describe the search; a loaded study must carry the same ones.
    """
    with quiet_optuna():  # Optuna's INFO line per created study is noise in a sweep's output
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=sampler, direction="minimize", load_if_exists=True
        )
    have = study.user_attrs
    for key, value in attrs.items():
        want = json.loads(json.dumps(value))  # tuples come back from storage as lists
        if key not in have:
            study.set_user_attr(key, want)
        elif have[key] != want:
            raise ValueError(
                f"study {name!r} was created with {key} = {have[key]!r}, but this searcher has {want!r}; "
                "use another study name to start a new search"
            )
    return study


def lattice_attrs(lattice: Lattice) -> dict[str, Any]:
    return {"models": list(lattice.models), "epochs": list(lattice.epochs), "lrs": list(lattice.lrs)}


def recover(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a dead driver as FAIL ('interrupted'); returns how many."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        # Optuna's own samplers write through the study's storage the same way
        study._storage.set_trial_user_attr(trial._trial_id, StudyAttr.STATUS, INTERRUPTED)
        study.tell(trial.number, state=TrialState.FAIL)
    return len(running)


def record(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> None:
    """Tell the study how a trial ended."""
    status = outcome.status if outcome.status is not TrialStatus.OK or outcome.finished else TrialStatus.DIVERGED
    trial.set_user_attr(StudyAttr.STATUS, status.value)
    if outcome.finished:
        study.tell(trial, outcome.val_loss)
    else:
        study.tell(trial, state=TrialState.FAIL)


def loss_of(trial: FrozenTrial) -> float | None:
    """The loss a trial counts with: its value, inf when diverged, None when it has no result
    (still running, failed, interrupted)."""
    if trial.state == TrialState.COMPLETE:
        return float(trial.value) if trial.value is not None else math.inf
    if trial.state == TrialState.FAIL and trial.user_attrs.get(StudyAttr.STATUS) == DIVERGED:
        return math.inf
    if early_stopped(trial):  # worse than its cell's incumbent: it can never be the cell's best
        return math.inf
    return None


def early_stopped(trial: FrozenTrial) -> bool:
    """Whether search.early_stop stopped the trial."""
    return trial.state == TrialState.PRUNED and trial.user_attrs.get(StudyAttr.STATUS) == EARLY_STOPPED


def record_early_stop(study: optuna.Study, trial: optuna.Trial, decision: Mapping[str, Any]) -> None:
    """Tell the study that search.early_stop stopped a trial (at once, so a resumed driver keeps it)."""
    trial.set_user_attr(StudyAttr.STATUS, EARLY_STOPPED)
    trial.set_user_attr(StudyAttr.EARLY_STOP, dict(decision))
    study.tell(trial, state=TrialState.PRUNED)


def failed(trial: FrozenTrial) -> bool:
    """Whether a trial ended without a result that says anything about its LR (status 'failed', or
    any other FAIL or PRUNED trial that is neither diverged nor interrupted): it counts toward its
    (cell, lr)'s retries."""
    if trial.state not in (TrialState.FAIL, TrialState.PRUNED):
        return False
    return trial.user_attrs.get(StudyAttr.STATUS) not in (DIVERGED, INTERRUPTED, EARLY_STOPPED)


def trial_key(study: str, lattice: Lattice, proposal: Proposal) -> str:
    """The durable key token of a proposed trial (`raysweep.core.records.TrialKey`), as its Optuna trial
    records it (user attr `trial_key`)."""
    from raysweep.core.records import TrialKey

    return TrialKey(study=study, model=lattice.models[proposal.cell.m], epochs=lattice.epochs[proposal.cell.e],
                    lr=proposal.lr, attempt=proposal.attempt).token()


def check_max_retries(max_retries: int) -> int:
    if max_retries < 0:
        raise ValueError(f"`max_retries >= 0` must hold, but got max_retries={max_retries}")
    return max_retries


def retry_reason(lr: float, failures: int, max_retries: int, reason: str) -> str:
    """The reason of the `failures`-th retry of a failed LR (1 <= failures <= max_retries)."""
    last = ", the last: another failure counts as diverged" if failures == max_retries else ""
    return f"retry after failure ({failures}/{max_retries}) of {lr:g}{last}; {reason}"


def lr_distribution(lrs: tuple[float, ...]) -> FloatDistribution:
    """Log-uniform over the grid widened by half a step at each end, so that snapping a sample to
    the nearest grid point gives every point the same mass."""
    if len(lrs) == 1:
        return FloatDistribution(lrs[0], lrs[0], log=True)
    lo = lrs[0] / math.sqrt(lrs[1] / lrs[0])
    hi = lrs[-1] * math.sqrt(lrs[-1] / lrs[-2])
    return FloatDistribution(lo, hi, log=True)


def nearest(lrs: tuple[float, ...], x: float, exclude: Collection[int] = ()) -> int:
    """Grid index nearest to `x` in log distance, skipping `exclude`; ties go to the larger LR."""
    free = [i for i in range(len(lrs)) if i not in exclude] or list(range(len(lrs)))
    return min(free, key=lambda i: (round(abs(math.log(lrs[i] / x)), 12), -i))


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Keep Optuna's one INFO line per created study out of the output while making many of them."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
