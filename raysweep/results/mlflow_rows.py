"""Finished trials read back from MLflow as rows: every ok or diverged trial of an experiment's
sweeps, with the results table's columns plus the sweep and recipe it belongs to."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from mlflow.tracking import MlflowClient

from raysweep.core.records import M, Tag, TrialStatus
from raysweep.results.rows import TrialRow
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


def read_trials(uri: str, experiment: str, parent_ids: Iterable[str] = ()) -> list[TrialRow]:
    """Every finished trial (ok or diverged) of the sweeps in `experiment` (or only `parent_ids`),
    as `TrialRow`s with their sweep (the parent run's name), parent and recipe (`recipe_of`). Failed
    trials are left out: they say nothing about the learning rate."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise FileNotFoundError(f"no MLflow experiment named {experiment!r} at {uri}")
    parents = set(parent_ids)
    names = {r.info.run_id: r.info.run_name or "" for r in client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_SWEEP}'", max_results=10000)}
    rows: list[TrialRow] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=f"tags.`{Tag.KIND}` = '{Tag.KIND_TRIAL}'",
                                  max_results=1000, page_token=token)
        for run in page:
            tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
            status = TrialStatus.parse(tags.get(Tag.STATUS))
            if status is None or not status.finished or (parents and tags.get(PARENT_TAG) not in parents):
                continue
            rows.append(TrialRow(
                model=params["model"],
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
            ))
        token = page.token
        if not token:
            break
    rows.sort(key=lambda r: (r.model_params or 0, r.model, r.epochs, r.lr, int(r.seed or 0)))
    return rows


