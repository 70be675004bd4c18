"""A Ray Tune callback that records every trial as a nested MLflow run, from the driver.

It also times each trial from the driver's side (start to completion), so the per-trial overhead
(wall time minus time inside the training loop) is measured, not guessed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raysweep.config import SweepSpec
from raysweep.core.records import M, Tag, TrialStatus
from raysweep.search import EarlyStop
from raysweep.sweep.trainable import trial_config
from raysweep.tracking import SweepTracker, TrialRun
from raysweep.train.kept import final_checkpoint


@dataclass
class TrialRecord:
    trial_id: str
    run_id: str
    model: str
    epochs: float
    lr: float
    cell: str
    reason: str
    started: float
    status: str = TrialStatus.RUNNING.value
    last: dict[str, Any] = field(default_factory=dict)
    wall_s: float = math.nan
    logged: dict[str, int] = field(default_factory=dict)  # last MLflow step per metric key
    restarts: int = 0
    train_run: str = ""  # TrialKey.train_run_name(): the trial's folder (and checkpoints) in the train storage
    early_stop: EarlyStop | None = None  # search.early_stop stopped it

    @property
    def val_loss(self) -> float:
        return float(self.last.get(M.VAL_LOSS, math.inf)) if self.status == TrialStatus.OK else math.inf

    @property
    def loop_s(self) -> float:
        return float(self.last.get(M.LOOP_S, math.nan))

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.loop_s


class MlflowTrialCallback(Callback):
    def __init__(self, tracker: SweepTracker, parent_run_id: str, spec: SweepSpec, *, concurrent: int,
                 progress: Callable[[str], None] | None = None,
                 earlier_runs: dict[str, TrialRun] | None = None, max_failures: int = 0,
                 train_storage: str | Path | None = None, units: Mapping[str, Any] | None = None,
                 early_stops: Mapping[str, EarlyStop] | None = None) -> None:
        # search.early_stop: the searcher's decisions by Tune trial id (TuneCellSearcher.early_stopped)
        self.early_stops: Mapping[str, EarlyStop] = early_stops if early_stops is not None else {}
        # Where the trials' Train runs keep their checkpoints: an ok trial's final one is recorded on
        # its child run (path and SHA-256) so that fine-tuning finds it from the experiment alone.
        self.train_storage = train_storage
        self.units = units  # a fine-tuning sweep's units by name (`raysweep.finetune.units`)
        self.concurrent = concurrent  # trials the cluster runs side by side
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.spec = spec
        self.records: dict[str, TrialRecord] = {}
        # A resumed sweep: the child runs earlier sessions made, by trial key. A trial proposed again
        # (it was in flight when the driver died, or stopped) continues under its own run.
        self.earlier_runs = dict(earlier_runs or {})
        self.reused: set[str] = set()  # keys of earlier runs continued in this session
        self.max_failures = max_failures  # Tune-level restarts of a trial from its checkpoint
        self.progress = progress  # one line per finished trial: the live view of a long sweep
        self._t0 = time.monotonic()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.records:  # a restarted trial keeps its run
            return
        cfg = trial_config(self.spec, trial.config, self.units)
        token = cfg.key.token()
        earlier = self.earlier_runs.pop(token, None)
        logged: dict[str, int] = {}
        if earlier is not None:
            run_id = earlier.run_id
            self.tracker.reopen_trial(run_id, cfg)
            logged = self.tracker.last_steps(run_id)
            self.reused.add(token)
        else:
            run_id = self.tracker.start_trial(self.parent_run_id, cfg, trial_id=trial.trial_id)
        self.records[trial.trial_id] = TrialRecord(trial.trial_id, run_id, cfg.model, cfg.epochs, cfg.lr, cfg.cell,
                                                   cfg.reason, started=time.monotonic(), logged=logged,
                                                   train_run=cfg.train_run_name())
        if self.progress is not None:
            again = " (continues its earlier run)" if earlier is not None else ""
            self.progress(f"[{_clock(time.monotonic() - self._t0)}] start  {cfg.cell:<16} lr={cfg.lr:<7g} | "
                          f"{cfg.reason}{again}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            return
        rec.last = {k: v for k, v in result.items() if k != M.CURVE}
        self.tracker.log_result(rec.run_id, result, rec.logged)
        restarts = int(result.get(M.RESTARTS, 0) or 0)
        if restarts > rec.restarts:  # a worker group Ray Train restarted, reporting again after resuming
            rec.restarts = restarts
            if self.progress is not None:
                self.progress(f"[{_clock(time.monotonic() - self._t0)}] lost   {rec.cell:<16} lr={rec.lr:<7g} "
                              f"a worker died; resumed from its checkpoint at step {int(result.get(M.STEP, 0))}, "
                              f"restart {restarts} of {self.max_failures}")
        if (self.progress is not None and result.get(M.STATUS) == TrialStatus.RUNNING.value
                and M.VAL_LOSS in result):  # an epoch boundary mid-budget (not a mid-epoch checkpoint)
            self.progress(f"[{_clock(time.monotonic() - self._t0)}] epoch  {rec.cell:<16} lr={rec.lr:<7g} "
                          f"{result.get(M.EPOCH, 0):.2g}/{rec.epochs:g} val/loss {result.get(M.VAL_LOSS, math.nan):.4f}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            return
        # A trial that ran its budget reported ok or diverged; one completed without that was stopped
        # by the sweep (--max-trials, Ctrl-C) or by search.early_stop. A crash arrives through
        # on_trial_error instead.
        rec.early_stop = self.early_stops.get(trial.trial_id)
        if rec.early_stop is not None:
            self._finish(rec, TrialStatus.STOPPED.value)
            return
        status = TrialStatus.parse(rec.last.get(M.STATUS))
        self._finish(rec, (status if status is not None and status.finished else TrialStatus.STOPPED).value)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial process died and Tune restarts it; it resumes from its latest checkpoint. One line."""
        rec = self.records.get(trial.trial_id)
        if rec is None:
            return
        rec.restarts += 1
        step = rec.last.get(M.STEP)
        where = f"its checkpoint at step {int(step)}" if step is not None else "the start"
        if self.progress is not None:
            self.progress(f"[{_clock(time.monotonic() - self._t0)}] lost   {rec.cell:<16} lr={rec.lr:<7g} "
                          f"trial process died ({_first_line(info.get('error') or getattr(trial, 'error_msg', ''))}); "
                          f"resumes from {where}, restart {rec.restarts} of {self.max_failures}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rec = self.records.get(trial.trial_id)
        if rec is not None:
            self._finish(rec, TrialStatus.FAILED.value)

    def _finish(self, rec: TrialRecord, status: str) -> None:
        rec.wall_s = time.monotonic() - rec.started
        rec.status = status
        extra = {M.TRIAL_WALL_S: rec.wall_s}
        tags: dict[str, str] = {}
        if math.isfinite(rec.loop_s):
            extra[M.OVERHEAD_S] = rec.overhead_s
        if status == TrialStatus.DIVERGED:
            extra[M.VAL_LOSS] = math.inf
        if rec.early_stop is not None:
            extra[M.SAVED_FLOPS] = rec.early_stop.saved_flops
            tags[Tag.EARLY_STOP] = rec.early_stop.reason()  # in the closing batch: a kill never splits the two
        if status == TrialStatus.OK and self.train_storage is not None and rec.train_run:
            kept = final_checkpoint(f"{self.train_storage}/{rec.train_run}")
            if kept is not None:
                tags.update(kept.tags())
        self.tracker.end_trial(rec.run_id, status=status, metrics=extra, tags=tags)
        if self.progress is not None:
            self.progress(self._line(rec))

    def _line(self, rec: TrialRecord) -> str:
        done = sum(r.status != TrialStatus.RUNNING for r in self.records.values())
        running = len(self.records) - done
        loss = f"{rec.val_loss:.4f}" if rec.status == TrialStatus.OK else "inf"
        acc = rec.last.get(M.VAL_ACC, math.nan) if rec.status == TrialStatus.OK else math.nan
        if rec.early_stop is not None:
            return (f"[{_clock(time.monotonic() - self._t0)}] done   {rec.cell:<16} lr={rec.lr:<7g} {rec.status:<8} "
                    f"{rec.early_stop.reason()} ({rec.early_stop.saved_flops:.3g} FLOPs saved) {rec.wall_s:6.1f} s | "
                    f"{done} done, {running} running")
        return (f"[{_clock(time.monotonic() - self._t0)}] done   {rec.cell:<16} lr={rec.lr:<7g} {rec.status:<8} "
                f"val/loss {loss:>7} acc {acc:5.3f} {rec.wall_s:6.1f} s | {done} done, {running} running")


def _first_line(err: Any) -> str:
    text = str(err or "").strip().splitlines()
    return (text[-1] if text else "no message")[:120]


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"
