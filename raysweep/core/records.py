"""The records every layer shares: a trial's durable key, its status, the metric, tag and study keys.

This module sits at the bottom of the stack (it imports nothing of raysweep, Ray, MLflow, Optuna or
torch), so the searcher, the Ray edge, the worker, MLflow tracking and the analysis all speak of a
trial in the same words. Names derived from a trial (its cell, its MLflow run name, its Ray Train
run folder) are computed here from the `TrialKey`, never formatted by hand elsewhere.

Durability: a `TrialKey` is built from what the searcher decided (study, cell, lr, attempt), not
from anything a process made up (a Tune trial id, an MLflow run id). A driver that dies and is
restarted proposes the same key for the same trial, so it finds the same Ray Train run folder (and
resumes from its checkpoints) and the same MLflow child run.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final


class TrialStatus(str, Enum):
    """Where a trial stands. The value is what MLflow's tag `raysweep.status` holds."""

    OK = "ok"  # ran its whole budget and has a finite validation loss
    DIVERGED = "diverged"  # the loss became NaN or infinite: the LR is too large
    FAILED = "failed"  # an exception, a lost worker, a pre-emption: nothing learned about the LR
    # cut off before its budget ended: by the sweep (--max-trials, Ctrl-C), or early-stopped by
    # search.early_stop (then its run carries Tag.EARLY_STOP and M.SAVED_FLOPS)
    STOPPED = "stopped"
    RUNNING = "running"  # started, not ended (a report between epochs, or a run a killed driver left)

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """Whether the trial says something about its LR (ok or diverged)."""
        return self in (TrialStatus.OK, TrialStatus.DIVERGED)

    @property
    def mlflow_status(self) -> str:
        """The MLflow run status a run of this trial status ends with."""
        return _MLFLOW_STATUS[self]

    @classmethod
    def parse(cls, value: Any) -> TrialStatus | None:
        """The status named by `value` (a status or its string), or None for anything else."""
        if isinstance(value, TrialStatus):
            return value
        try:
            return cls(value)
        except ValueError:
            return None


_MLFLOW_STATUS: Final = {
    TrialStatus.OK: "FINISHED",
    TrialStatus.DIVERGED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.STOPPED: "KILLED",
    TrialStatus.RUNNING: "RUNNING",
}


class M:
    """Metric keys (`split/name`): one constant each, shared by the loop, MLflow and the analysis."""

    STEP: Final = "step"
    EPOCH: Final = "epoch"
    TRAIN_LOSS: Final = "train/loss"
    LR: Final = "lr"
    VAL_LOSS: Final = "val/loss"
    VAL_ACC: Final = "val/acc"
    EXAMPLES: Final = "compute/examples"
    FLOPS: Final = "compute/flops"
    CORE_HOURS: Final = "compute/core_hours"
    TRAIN_S: Final = "time/train_s"  # optimiser steps only: what core-hours count
    LOOP_S: Final = "time/loop_s"  # the training loop's wall time over every attempt
    COMPILE_S: Final = "time/compile_s"  # graph compilation: XLA's, or torch.compile's with train.compile (else 0)
    TRIAL_WALL_S: Final = "time/trial_wall_s"  # start to end, seen from the driver
    OVERHEAD_S: Final = "time/overhead_s"  # trial wall time minus the loop's
    # search.early_stop: the FLOPs an early-stopped trial did not spend (the rest of its budget)
    SAVED_FLOPS: Final = "compute/saved_flops"
    # Keys of a report that are not MLflow metrics
    STATUS: Final = "status"
    CURVE: Final = "curve"  # [(step, train loss, lr), ...] since the last report
    MODEL_PARAMS: Final = "model_params"
    FLOPS_PER_EXAMPLE: Final = "flops_per_example"
    TOTAL_STEPS: Final = "total_steps"
    RESTARTS: Final = "restarts"  # how often the trial was restarted from a checkpoint
    DATA_DIGEST: Final = "data/order_digest"  # order-sensitive digest of every batch read (48 bits)
    DATA_SKIPPED: Final = "data/skipped_examples"  # dropped with corrupt shards (data.skip_corrupt_shards); 0: absent

    # The sweep's own, on the parent run when it closes
    SWEEP_WALL_S: Final = "sweep/wall_s"
    SWEEP_IDEAL_S: Final = "sweep/ideal_s"  # the trials' wall time / concurrent trials: no idle slot
    SWEEP_TRIALS: Final = "sweep/trials"
    SWEEP_CELLS: Final = "sweep/cells"
    SWEEP_MEDIAN_TRIAL_WALL_S: Final = "sweep/median_trial_wall_s"
    SWEEP_MEDIAN_LOOP_S: Final = "sweep/median_loop_s"
    SWEEP_MEDIAN_OVERHEAD_S: Final = "sweep/median_overhead_s"
    SWEEP_TOTAL_FLOPS: Final = "sweep/total_flops"
    SWEEP_SAVED_FLOPS: Final = "sweep/saved_flops"  # search.early_stop: what this session's stops saved
    # The data shape the model was built at (also MLflow params of the trial run): with the ladder
    # family and the rung, what a later stage (fine-tuning) rebuilds the model from, without the data
    MODEL_NUM_CLASSES: Final = "model_num_classes"
    MODEL_IN_CHANS: Final = "model_in_chans"
    MODEL_IMAGE_SIZE: Final = "model_image_size"
    MODEL_SHAPE: Final = (MODEL_NUM_CLASSES, MODEL_IN_CHANS, MODEL_IMAGE_SIZE)
    # Fine-tuning (issue 14): the downstream result, and the source's pre-training cost beside the
    # run's own compute/* so that Figure 1 (downstream error against pre-training compute) reads one run
    FT_TOP1: Final = "finetune/top1"
    FT_LOSS: Final = "finetune/loss"
    PRETRAIN_FLOPS: Final = "pretrain/flops"
    PRETRAIN_CORE_HOURS: Final = "pretrain/core_hours"

    # Logged per report at the report's step; the curve is logged per point.
    PER_REPORT: Final = (VAL_LOSS, VAL_ACC, EPOCH, EXAMPLES, FLOPS, CORE_HOURS, TRAIN_S, LOOP_S, COMPILE_S, RESTARTS,
                          DATA_DIGEST, DATA_SKIPPED, FT_TOP1, FT_LOSS, PRETRAIN_FLOPS, PRETRAIN_CORE_HOURS)


class Tag:
    """MLflow tag keys raysweep writes."""

    PARENT: Final = "mlflow.parentRunId"  # MLflow's own nesting tag
    NOTE: Final = "mlflow.note.content"
    KIND: Final = "raysweep.kind"  # "sweep" or "trial"
    CELL: Final = "raysweep.cell"
    STATUS: Final = "raysweep.status"
    REASON: Final = "raysweep.reason"
    TRIAL_KEY: Final = "raysweep.trial_key"  # TrialKey.token(): the durable identity
    STUDY: Final = "raysweep.study"
    SPACE: Final = "raysweep.core.space"
    SEARCHER: Final = "raysweep.searcher"
    BEST_IN_CELL: Final = "raysweep.best_in_cell"
    SETTLED_LR: Final = "raysweep.settled_lr"
    SETTLED_PREFIX: Final = "raysweep.settled."  # + cell_tag_name(cell), on the parent run
    TRIAL_ID: Final = "raysweep.trial_id"  # the Ray Tune trial id of the session that ran it last
    EARLY_STOP: Final = "raysweep.early_stop"  # why search.early_stop stopped the trial (one line)
    RESUMED: Final = "raysweep.resumed"  # how often a later driver reopened this child run
    WARM_START: Final = "raysweep.warm_start"  # on the parent run: the earlier study a warm start fitted
    # on the parent run: the cells whose search wanted an LR beyond the grid, by the bound to widen,
    # "lr.high=cell,cell;lr.low=cell" (`raysweep.sweep.closing.grid_blocked_tag`), or "none"
    LR_GRID_BLOCKED: Final = "raysweep.lr_grid_blocked"
    JOURNAL_KEY: Final = "raysweep.journal_key"  # the journal's id of a run, so a replay finds it again
    # An ok trial's final checkpoint, for a later stage (fine-tuning) on any machine of the cluster:
    # its folder (absolute path or URI under the sweep's train storage) and the SHA-256 of its state
    # file (`raysweep.train.kept.checkpoint_sha256`), checked again when the checkpoint is loaded.
    CHECKPOINT: Final = "raysweep.checkpoint"
    CHECKPOINT_SHA256: Final = "raysweep.checkpoint_sha256"

    # MLflow 3's UI opens an experiment on the page its kind names; without the tag it may guess the
    # GenAI "Overview" (traces), not the training runs.
    EXPERIMENT_KIND: Final = "mlflow.experimentKind"
    EXPERIMENT_KIND_TRAINING: Final = "custom_model_development"

    KIND_SWEEP: Final = "sweep"
    KIND_TRIAL: Final = "trial"
    # Fine-tuning: a fine-tuning sweep's parent names the pre-training sweep(s) it read; each child
    # run names the pre-training run and trial its checkpoint came from (none for the baseline)
    KIND_FINETUNE_SWEEP: Final = "finetune_sweep"
    KIND_FINETUNE_TRIAL: Final = "finetune_trial"
    PRETRAINING_PARENTS: Final = "raysweep.pretraining_parents"  # comma-separated parent run ids
    SOURCE_RUN: Final = "raysweep.source_run"
    SOURCE_TRIAL_KEY: Final = "raysweep.source_trial_key"  # the source's TrialKey.token()
    FINETUNE_KEY: Final = "raysweep.finetune_key"  # FinetuneKey.token(): the durable identity
    # why the source checkpoint was chosen: "why@point" for each reason, joined by ";" (the
    # finding-4 comparison reads its groups from it); empty for the from-scratch baseline
    FINETUNE_REASONS: Final = "raysweep.finetune_reasons"
    SOURCE_CELL: Final = "raysweep.source_cell"  # the source's cell, model@epochs


class StudyAttr:
    """Keys raysweep writes on Optuna studies and trials (user attributes)."""

    SEARCHER: Final = "raysweep.searcher"
    CELL: Final = "raysweep.cell"  # a per-cell study's cell
    LATTICE: Final = "raysweep.lattice"  # the models, budgets and LRs the study was made for
    RULE: Final = "raysweep.rule"  # the prior rule's settings (start LR, slowness, tie tolerance)
    TRIALS_PER_CELL: Final = "raysweep.trials_per_cell"
    WARM_START: Final = "raysweep.warm_start"  # the warm-start plan, replayed on --resume
    # on each Optuna trial
    STATUS: Final = "status"  # ok | diverged | failed | interrupted | stopped (early-stopped: PRUNED)
    EARLY_STOP: Final = "early_stop"  # search.early_stop's decision (raysweep.search.early_stop.EarlyStop)
    REASON: Final = "reason"
    TRIAL_ID: Final = "trial_id"
    TRIAL_KEY: Final = "trial_key"  # TrialKey.token()


def format_epochs(epochs: float) -> str:
    """0.25 -> '0.25', 2.0 -> '2'."""
    return f"{epochs:g}"


def cell_name(model: str, epochs: float) -> str:
    """`<model>@<epochs>`: how a cell is named everywhere (MLflow tag raysweep.cell, tables, logs)."""
    return f"{model}@{format_epochs(epochs)}"


def cell_tag_name(cell: str) -> str:
    """MLflow tag keys may not hold '@': the cell nfnet_t0@0.5 becomes nfnet_t0:0.5 in a tag key."""
    return cell.replace("@", ":")


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TrialKey:
    """The durable identity of one trial: which study, which cell, which LR, which attempt.

    attempt 0 is the first run of (cell, lr); a failed trial that the searcher proposes again is
    attempt 1, 2, ... Everything else that names the trial is derived from this key.
    """

    study: str
    model: str
    epochs: float
    lr: float
    attempt: int = 0

    def __post_init__(self) -> None:
        assert self.attempt >= 0, "attempt counts from 0"
        assert math.isfinite(self.lr) and self.lr > 0, "a trial's LR is a positive number"

    @property
    def cell(self) -> str:
        return cell_name(self.model, self.epochs)

    def token(self) -> str:
        """A canonical string, stable across processes and Python versions (MLflow tag value)."""
        return f"{self.study}|{self.cell}|lr={self.lr:.6g}|attempt={self.attempt}"

    @classmethod
    def from_token(cls, token: str) -> TrialKey:
        try:
            study, cell, lr, attempt = token.rsplit("|", 3)
            model, _, epochs = cell.rpartition("@")
            return cls(study=study, model=model, epochs=float(epochs), lr=float(lr.removeprefix("lr=")),
                       attempt=int(attempt.removeprefix("attempt=")))
        except (ValueError, AssertionError):
            raise ValueError(f"expected a trial key 'study|model@epochs|lr=X|attempt=N', got {token!r}") from None

    def digest(self) -> str:
        return hashlib.sha1(self.token().encode()).hexdigest()[:10]

    def slug(self) -> str:
        """A short, readable, filesystem-safe name unique within the study."""
        return _SAFE.sub("-", f"{self.model}_e{format_epochs(self.epochs)}_lr{self.lr:.6g}_a{self.attempt}")

    def run_name(self) -> str:
        """The MLflow child run's name."""
        suffix = f" attempt {self.attempt}" if self.attempt else ""
        return f"{self.cell} lr={self.lr:.6g}{suffix}"

    def train_run_name(self) -> str:
        """The Ray Train run name: its folder (and checkpoints) under the sweep's storage path. The
        same key always gets the same folder, so a re-run trial resumes from its own checkpoints."""
        return f"{_SAFE.sub('-', self.study)}-{self.slug()}-{self.digest()}"

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "model": self.model, "epochs": self.epochs, "lr": self.lr,
                "attempt": self.attempt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialKey:
        return cls(study=str(d["study"]), model=str(d["model"]), epochs=float(d["epochs"]), lr=float(d["lr"]),
                   attempt=int(d.get("attempt", 0)))


SCRATCH: Final = "scratch:"  # a FinetuneKey's source for the from-scratch baseline: + the rung


@dataclass(frozen=True)
class FinetuneKey:
    """The durable identity of one fine-tuning trial: which study, from which pre-training trial
    (its `TrialKey.token()`, or `SCRATCH` + rung for the from-scratch baseline), which LR, which
    seed, which attempt. Like a `TrialKey`, made only from what the searcher decided."""

    study: str
    source: str
    lr: float
    seed: int = 0
    attempt: int = 0
    repeats: int = 1  # repeated augmentation's k (1: off); a part of the key only when above 1

    def __post_init__(self) -> None:
        assert self.attempt >= 0 and self.seed >= 0, "attempts and seeds count from 0"
        assert self.repeats >= 1, "repeated augmentation's k counts from 1"
        assert math.isfinite(self.lr) and self.lr > 0, "a trial's LR is a positive number"
        assert self.source, "a fine-tuning trial has a source: a trial key, or scratch:<rung>"

    @classmethod
    def scratch(cls, study: str, model: str, lr: float, seed: int = 0, attempt: int = 0,
                repeats: int = 1) -> FinetuneKey:
        return cls(study, SCRATCH + model, lr, seed, attempt, repeats)

    @property
    def baseline(self) -> bool:
        return self.source.startswith(SCRATCH)

    @property
    def model(self) -> str:
        return self.source.removeprefix(SCRATCH) if self.baseline else TrialKey.from_token(self.source).model

    def source_key(self) -> TrialKey | None:
        """The pre-training trial's key (None for the baseline)."""
        return None if self.baseline else TrialKey.from_token(self.source)

    def token(self) -> str:
        k = f"|k={self.repeats}" if self.repeats > 1 else ""
        return f"{self.study}|ft|{self.source}|lr={self.lr:.6g}|seed={self.seed}{k}|attempt={self.attempt}"

    @classmethod
    def from_token(cls, token: str) -> FinetuneKey:
        try:
            rest, last = token.rsplit("|", 1)
            k_part = rest.rsplit("|", 1)[1]
            repeats = int(k_part.removeprefix("k=")) if k_part.startswith("k=") else 1
            if k_part.startswith("k="):  # k sits between the seed and the attempt when above 1
                token = f"{rest.rsplit('|', 1)[0]}|{last}"
            head, lr, seed, attempt = token.rsplit("|", 3)
            study, sep, source = head.partition("|ft|")
            if not sep or not lr.startswith("lr=") or not seed.startswith("seed=") or not attempt.startswith("attempt="):
                raise ValueError(token)
            return cls(study=study, source=source, lr=float(lr.removeprefix("lr=")),
                       seed=int(seed.removeprefix("seed=")), attempt=int(attempt.removeprefix("attempt=")),
                       repeats=repeats)
        except (ValueError, AssertionError):
            raise ValueError("expected a fine-tuning key 'study|ft|source|lr=X|seed=N[|k=K]|attempt=N', got "
                             f"{token!r}") from None

    def digest(self) -> str:
        return hashlib.sha1(self.token().encode()).hexdigest()[:10]

    def slug(self) -> str:
        src = self.source_key()
        what = f"{self.model}_scratch" if src is None else f"{src.model}_e{format_epochs(src.epochs)}_lr{src.lr:.6g}"
        k = f"_k{self.repeats}" if self.repeats > 1 else ""
        return _SAFE.sub("-", f"ft_{what}_flr{self.lr:.6g}_s{self.seed}{k}_a{self.attempt}")

    def run_name(self) -> str:
        """The MLflow child run's name."""
        src = self.source_key()
        what = f"{self.model} from scratch" if src is None else f"from {src.cell} lr={src.lr:.6g}"
        suffix = f" attempt {self.attempt}" if self.attempt else ""
        k = f" k={self.repeats}" if self.repeats > 1 else ""
        return f"{what} | ft lr={self.lr:.6g} seed {self.seed}{k}{suffix}"

    def train_run_name(self) -> str:
        """The Ray Train run folder: the same key, the same folder, so a re-run resumes."""
        return f"{_SAFE.sub('-', self.study)}-{self.slug()}-{self.digest()}"
