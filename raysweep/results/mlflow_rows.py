"""Finished trials read back from MLflow as rows: every ok or diverged trial of an experiment's
sweeps, with the results table's columns plus the sweep and recipe it belongs to."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mlflow.tracking import MlflowClient

from raysweep.core.records import FinetuneKey, M, Tag, TrialStatus
from raysweep.results.rows import FinetuneRow, TrialRow
from raysweep.tracking import PARENT_TAG
from raysweep.tracking.store import read_metric

# What makes two sweeps' runs one study, so their cells, LRs and seeds may be pooled: the same
# models, data, batch and training recipe. The LR grid, the seed, the searcher and the resources may differ.
RECIPE_PARAMS = ("ladder.family", "ladder.timm", "data.dataset", "data.path", "data.image_size", "data.train_subset",
                 "data.val_fraction", "data.split_seed", "batch_size", "optim.name", "optim.momentum",
                 "optim.nesterov", "optim.betas", "optim.agc_clip", "optim.weight_decay", "optim.label_smoothing",
                 "optim.warmup_fraction")


def recipe_of(params: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A trial run's recipe (RECIPE_PARAMS present on it), comparable across runs."""
    return tuple((k, params[k]) for k in RECIPE_PARAMS if k in params)


def lr_grid_of(params: Mapping[str, str]) -> tuple[float, float, float] | tuple[()]:
    """(lr.low, lr.high, lr.factor) from a trial run's params (the spec's, flattened), or () when absent."""
    try:
        return (float(params["lr.low"]), float(params["lr.high"]), float(params["lr.factor"]))
    except (KeyError, ValueError):
        return ()


def read_trials(uri: str, experiment: str, parent_ids: Iterable[str] = (),
                kinds: tuple[str, ...] = (Tag.KIND_TRIAL,), *, curves: bool = False) -> list[TrialRow]:
    """Every finished trial (ok or diverged) of the sweeps in `experiment` (or only `parent_ids`),
    as `TrialRow`s with their sweep (the parent run's name), parent and recipe (`recipe_of`). Failed
    trials are left out: they say nothing about the learning rate. `kinds`: the child runs' kinds
    (pre-training trials; a fine-tuning trial's row names its unit as its model). With `curves`,
    each row also holds its validation-loss curve (`curve_of`: one MLflow request per run)."""
    client, exp, names = _open(uri, experiment, (Tag.KIND_SWEEP, Tag.KIND_FINETUNE_SWEEP))
    parents = set(parent_ids)
    rows: list[TrialRow] = []
    for run in _runs(client, exp.experiment_id, kinds):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        status = TrialStatus.parse(tags.get(Tag.STATUS))
        if status is None or not status.finished or (parents and tags.get(PARENT_TAG) not in parents):
            continue
        rows.append(TrialRow(
            model=params.get("unit") or params["model"],
            model_params=int(params.get("model_params", 0) or 0),
            epochs=float(params["epochs"]),
            lr=float(params["lr"]),
            seed=str(int(params.get("seed", 0))),
            val_loss=math.inf if status == TrialStatus.DIVERGED else read_metric(metrics.get(M.VAL_LOSS, math.inf)),
            flops=metrics.get(M.FLOPS, 0.0),
            core_hours=metrics.get(M.CORE_HOURS, 0.0),
            status=str(status),
            parent=tags.get(PARENT_TAG, ""),
            sweep=names.get(tags.get(PARENT_TAG, ""), ""),
            recipe=recipe_of(params),
            val_acc=metrics.get(M.VAL_ACC, math.nan),
            run_id=run.info.run_id,
            trial_key=tags.get(Tag.TRIAL_KEY, ""),
            checkpoint=tags.get(Tag.CHECKPOINT, ""),
            checkpoint_sha256=tags.get(Tag.CHECKPOINT_SHA256, ""),
            family=params.get("family", ""),
            # the shape the model was built at (0: not recorded, a run older than these params)
            shape=(int(params.get(M.MODEL_NUM_CLASSES, 0) or 0), int(params.get(M.MODEL_IN_CHANS, 0) or 0),
                   int(params.get(M.MODEL_IMAGE_SIZE, 0) or 0)),
            curve=curve_of(client, run.info.run_id, params.get(M.TOTAL_STEPS), status) if curves else (),
            lr_grid=lr_grid_of(params),
        ))
    rows.sort(key=lambda r: (r.model_params or 0, r.model, r.epochs, r.lr, int(r.seed or 0)))
    return rows


def curve_of(client: MlflowClient, run_id: str, total_steps: str | None,
             status: TrialStatus) -> tuple[tuple[float, float], ...]:
    """A trial's validation loss at each evaluation point, (step / total steps, loss) ascending, from
    the MLflow history of val/loss. Total steps: the run's `total_steps` param, else (runs older than
    it) the last evaluated step of a trial that finished ok. () when the total is unknown (a diverged
    run without the param) or nothing was evaluated. A diverged run's curve ends at its last finite point."""
    history = {int(m.step): read_metric(m.value) for m in client.get_metric_history(run_id, M.VAL_LOSS)}
    if not history:
        return ()
    total = int(total_steps) if total_steps else (max(history) if status == TrialStatus.OK else 0)
    if total <= 0:
        return ()
    return tuple((min(step / total, 1.0), loss) for step, loss in sorted(history.items()) if step > 0)


def _open(uri: str, experiment: str, sweep_kinds: tuple[str, ...]) -> tuple[MlflowClient, Any, dict[str, str]]:
    """The client, the experiment (FileNotFoundError when there is none) and its sweep (parent)
    runs' names by run id, for the parent kinds given."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise FileNotFoundError(f"no MLflow experiment named {experiment!r} at {uri}")
    return client, exp, {r.info.run_id: r.info.run_name or "" for r in _runs(client, exp.experiment_id, sweep_kinds)}


def _runs(client: MlflowClient, experiment_id: str, kinds: Iterable[str]) -> Iterator[Any]:
    """Every run of the experiment whose kind tag is one of `kinds`, page by page."""
    for kind in kinds:
        token = None
        while True:
            page = client.search_runs([experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{kind}'",
                                      max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                break




def read_finetune_rows(uri: str, experiment: str, parent_ids: Iterable[str] = ()) -> list[FinetuneRow]:
    """Every finished fine-tuning trial of `experiment` (or of the sweeps `parent_ids`), ok or not,
    as `FinetuneRow`s: what Figure 1 and the finding-4 table read."""
    client, exp, names = _open(uri, experiment, (Tag.KIND_FINETUNE_SWEEP,))
    parents = set(parent_ids)
    rows = []
    for run in _runs(client, exp.experiment_id, (Tag.KIND_FINETUNE_TRIAL,)):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        status = TrialStatus.parse(tags.get(Tag.STATUS))
        if status is None or status == TrialStatus.RUNNING or (parents and tags.get(PARENT_TAG) not in parents):
            continue
        key = FinetuneKey.from_token(tags[Tag.FINETUNE_KEY])
        reasons = tuple(tuple(r.split("@", 1)) for r in tags.get(Tag.FINETUNE_REASONS, "").split(";") if "@" in r)
        ok = status == TrialStatus.OK
        rows.append(FinetuneRow(
            model=params["model"], lr=float(params["lr"]), seed=key.seed, repeats=key.repeats, status=str(status),
            top1=metrics.get(M.FT_TOP1, math.nan) if ok else math.nan,
            loss=read_metric(metrics.get(M.FT_LOSS, math.inf)) if ok else math.inf,
            flops=metrics.get(M.FLOPS, 0.0), pretrain_flops=metrics.get(M.PRETRAIN_FLOPS, 0.0),
            core_hours=metrics.get(M.CORE_HOURS, math.nan),
            pretrain_core_hours=metrics.get(M.PRETRAIN_CORE_HOURS, math.nan),
            source_cell=tags.get(Tag.SOURCE_CELL, ""),
            source_lr=float(params["source_lr"]) if tags.get(Tag.SOURCE_CELL) else math.nan,
            pretrain_loss=float(params.get("pretrain_loss", "nan")),
            reasons=reasons,  # type: ignore[arg-type]
            run_id=run.info.run_id, source_run=tags.get(Tag.SOURCE_RUN, ""),
            source_trial_key=tags.get(Tag.SOURCE_TRIAL_KEY, ""), finetune_key=tags[Tag.FINETUNE_KEY],
            parent=tags.get(PARENT_TAG, ""), sweep=names.get(tags.get(PARENT_TAG, ""), "")))
    rows.sort(key=lambda r: (r.pretrain_flops, r.model, r.source_cell, r.source_lr, r.repeats, r.lr, r.seed))
    return rows
