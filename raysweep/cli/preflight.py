"""Preflight: every check that runs once, before anything is created or started.

- `check_spec`: what the file cannot tell alone (the config package checks only the file): the
  ladder's family or timm models exist, and its rungs build and grow.
- `preflight`: the data loads (or, for a dry run, `data.assume` stands in), the ladder builds at
  the data's real shape, and every epoch budget buys a step. Returns the data's shape.
- `preflight_stores`: the results folder, the MLflow tracking store and the Optuna storage, each
  checked without creating anything: a folder is looked at, not made; an HTTP tracking server is
  asked one read-only question with no retries; a database URL is parsed and its driver loaded,
  not connected.
Each problem is a `SpecError` naming the file, flag or key the value came from.
"""

from __future__ import annotations

import argparse
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from raysweep.core.errors import SpecError
from raysweep.core.redact import redact_url

if TYPE_CHECKING:
    from raysweep.config import SweepSpec
    from raysweep.data.shape import DataShape

PROBE_TIMEOUT_S = 10  # one read-only request to the tracking server; a live server answers in milliseconds


def positive_int(text: str) -> int:
    """argparse type for counts such as --max-trials: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def results_location(text: str) -> Path | str:
    """argparse type for --results: a folder (a Path), or an s3:// or gs:// URL kept as written
    (a Path would fold its '//')."""
    if "://" in text:
        protocol = text.partition("://")[0]
        if protocol not in ("s3", "gs"):
            raise argparse.ArgumentTypeError(f"expected a folder or an s3:// or gs:// URL, got {redact_url(text)}")
        if not text.partition("://")[2].strip("/"):
            raise argparse.ArgumentTypeError(f"expected a bucket in {text}")
        return text.rstrip("/")
    return Path(text)


def check_results_dir(path: Path | str, *, key: str = "--results") -> None:
    """`path` is a folder that can be made (or exists) and written to, or an s3:// or gs:// URL
    whose bucket exists and takes the credentials; nothing is created."""
    from raysweep.data.store import check_writable_location, is_remote

    if is_remote(path):
        try:
            check_writable_location(str(path))
        except SpecError as err:
            raise SpecError(err.detail.replace("cannot read", "cannot use"), key=key) from None
        return
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise SpecError(f"expected a folder, got the file {path}", key=key)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise SpecError(f"expected a writable folder, got {path} ({existing} is a file)", key=key)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpecError(f"expected a writable folder, got {path} ({existing} is not writable)", key=key)


def check_tracking_uri(uri: str, *, key: str) -> None:
    """An MLflow tracking URI that raysweep can write to; SQLite and file stores are not created."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        if db.exists() and not db.is_file():
            raise SpecError(f"expected an SQLite database file, got the folder {db}", key=key)
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK | os.X_OK):
            raise SpecError(f"expected an SQLite file in a writable folder, got {uri}", key=key)
    elif uri.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        check_results_dir(Path(unquote(urlsplit(uri).path)), key=key)
    elif uri.startswith(("http://", "https://")):
        _probe_server(uri, key=key)


def _probe_server(uri: str, *, key: str) -> None:
    """One read-only request (search one experiment) without retries: is an MLflow server there,
    and does it take our credentials (from the URL or $MLFLOW_TRACKING_USERNAME/_PASSWORD/_TOKEN)?"""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    shown = redact_url(uri)
    try:
        response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "POST",
                                max_retries=0, timeout=PROBE_TIMEOUT_S, raise_on_status=False,
                                json={"max_results": 1})
    except MlflowException as err:  # MLflow wraps every connection error and timeout in it
        raise SpecError(f"expected a reachable MLflow tracking server, got {shown} ({_reason(err)})", key=key) from None
    if response.status_code in (401, 403):
        raise SpecError(f"the MLflow tracking server at {shown} refused the credentials "
                        f"(HTTP {response.status_code}); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                        f"or MLFLOW_TRACKING_TOKEN", key=key)
    if response.status_code != 200:
        raise SpecError(f"expected an MLflow tracking server at {shown}, got HTTP {response.status_code} "
                        f"for an experiment search", key=key)


def _reason(err: BaseException) -> str:
    """The last words of a connection error ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    text = str(err)
    match = re.search(r"(\[Errno -?\d+\][^\"')]*)", text)
    if match:
        return match.group(1).strip()
    return "timed out" if "timeout" in text.lower() else type(err.__context__ or err).__name__


def check_storage_url(url: str, *, key: str = "search.storage") -> None:
    """An Optuna storage URL that SQLAlchemy can parse and whose driver is installed; not connected."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = redact_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SpecError(f"expected a database URL such as sqlite:////abs/path/optuna.db or "
                        f"postgresql+psycopg://user@host/db, got {shown!r}", key=key) from None
    try:
        with warnings.catch_warnings():  # SQLAlchemy's note on ignored query arguments reaches Optuna later
            warnings.simplefilter("ignore")
            sqlalchemy.create_engine(parsed).dispose()  # loads the dialect and its driver; connects to nothing
    except NoSuchModuleError:
        raise SpecError(f"expected a database SQLAlchemy knows, got {parsed.drivername!r} in {shown!r}",
                        key=key) from None
    except ModuleNotFoundError as err:
        raise SpecError(f"the Python module {err.name}, the driver SQLAlchemy uses for {parsed.drivername}, "
                        f"is not installed; got {shown!r}", key=key) from None
    in_a_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if in_a_file and not Path(parsed.database or "").parent.is_dir():
        raise SpecError(f"expected an SQLite file in an existing folder, got {shown!r}", key=key)


def check_spec(spec: SweepSpec, file: str) -> None:
    """What config cannot check without the model registry: the ladder's family or timm models exist,
    and a ladder written in the file builds and grows at its image size. The dataset's classes are
    known here when it is a fixed one, its channels only once it is read (`preflight` checks again at
    the real shape), so 3 channels stand in for them."""
    from raysweep.data import DATASETS
    from raysweep.models.checks import check_ladder, check_models

    try:
        check_ladder(spec.ladder)
    except SpecError as err:
        raise err.located(file=file, key_prefix="ladder") from None
    classes = getattr(DATASETS[spec.data.dataset], "num_classes", 10)
    try:
        check_models(spec.ladder, num_classes=classes, in_chans=3, image_size=spec.data.image_size)
    except SpecError as err:
        raise err.located(file=file) from None


def load_checked(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """`raysweep.config.load_spec` plus `check_spec`: a search space as `raysweep run` accepts it
    before reading the data."""
    from raysweep.config import load_spec

    spec = load_spec(path, overrides)
    check_spec(spec, str(path))
    check_later_stages(path, overrides)
    return spec


def check_later_stages(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """A `finetune:` section in a sweep's file is checked too, with its `--set finetune.*` overrides:
    a typo in it is found before the pre-training starts, not hours later when the fine-tuning does."""
    from raysweep.config import later_stage, read_space
    from raysweep.finetune.spec import SECTION, load_finetune

    raw = read_space(path)  # load_spec has read it whole already
    if SECTION in raw or any(later_stage(o) == SECTION for o in overrides):
        load_finetune(path, overrides)


def preflight(spec: SweepSpec, file: str, *, dry_run: bool = False) -> DataShape:
    """Check what only the data can tell before anything starts: it loads, and every budget buys a
    step. Returns the data's shape; a dry run may plan with `data.assume` where the data is absent."""
    from raysweep.data import load_splits
    from raysweep.data.shape import DataShape
    from raysweep.models.checks import check_models
    from raysweep.train.recipe import plan_steps

    check_spec(spec, file)

    try:
        splits = load_splits(spec.data, verify=True)
    except (FileNotFoundError, SpecError) as err:  # the data layer names keys within `data`
        assume = spec.data.assume
        if not (dry_run and assume is not None):
            hint = "; a dry run can plan without it from data.assume" if dry_run else ""
            if isinstance(err, SpecError):
                where = err.located(file=file, key_prefix="data")
                raise SpecError(where.detail + hint, file=where.file, key=where.key) from None
            raise SpecError(f"the dataset cannot be read: {err}{hint}", file=file, key="data") from None
        shape = DataShape(assume.train_examples, None, assume.num_classes, assume.in_chans, spec.data.image_size,
                          assumed=True)
        try:  # a ladder written in the file, at the shape the dry run assumes
            check_models(spec.ladder, num_classes=assume.num_classes, in_chans=assume.in_chans,
                         image_size=spec.data.image_size)
        except SpecError as err:
            raise err.located(file=file) from None
    else:
        if spec.batch_size > len(splits.train):
            raise SpecError(f"expected at most the {len(splits.train)} training examples of {spec.data.dataset}, "
                            f"got {spec.batch_size}", file=file, key="batch_size")
        try:  # a ladder written in the file, again at the data's real channels and classes
            check_models(spec.ladder, num_classes=splits.num_classes, in_chans=splits.in_chans,
                         image_size=splits.image_size)
        except SpecError as err:
            raise err.located(file=file) from None
        shape = DataShape(len(splits.train), len(splits.val), splits.num_classes, splits.in_chans,
                          splits.image_size)
    for i, e in enumerate(spec.epochs):
        try:
            plan_steps(n_train=shape.n_train, batch_size=spec.batch_size, epochs=e,
                       warmup_fraction=spec.optim.warmup_fraction)
        except ValueError as err:
            raise SpecError(str(err), file=file, key=f"epochs[{i}]") from None
    return shape


def preflight_stores(spec: SweepSpec, args: argparse.Namespace, uri: str) -> None:
    """Check the results folder, the tracking store and the study storage; create none of them."""
    check_results_dir(args.results)
    from raysweep.data.store import driver_folder, is_remote

    if is_remote(args.results) and not (spec.search.storage or os.environ.get("RAYSWEEP_OPTUNA_STORAGE")):
        check_results_dir(driver_folder(str(args.results)))  # the SQLite study and the journal stay here
    if getattr(args, "resume", False):
        try:
            check_resumable(spec, args.results)
        except SpecError as err:  # a key of the file names the file; --resume does not
            raise (err if (err.key or "").startswith("--") else err.located(file=str(args.space))) from None
    if spec.search.storage:  # local checks first, the network last
        try:
            check_storage_url(spec.search.storage)
        except SpecError as err:
            raise err.located(file=str(args.space)) from None
    check_tracking(spec, args, uri)


def check_resumable(spec: SweepSpec, results: Path | str) -> None:
    """`--resume` has a study to continue: a searcher that keeps one and, where the study is the
    default SQLite file, that file. With the results in a bucket the file stays on the driver that
    started the sweep (SQLite cannot live in a bucket), so a new driver in another working folder
    is told so here, before Ray starts, rather than finding no study after it has."""
    from raysweep.data.store import driver_folder, is_remote
    from raysweep.search import searcher_row

    if not searcher_row(spec.search.searcher).resumable:
        raise SpecError(f"the {spec.search.searcher} searcher keeps no study to resume; expected a searcher such as "
                        "monotone", key="search.searcher")
    if spec.search.storage or os.environ.get("RAYSWEEP_OPTUNA_STORAGE"):
        return  # a database server: the runner finds the study there (or says it has none)
    remote = is_remote(results)
    local = driver_folder(str(results)) if remote else Path(results).expanduser().absolute()
    study = local / spec.name / "optuna.db"
    if study.is_file():
        return
    if remote:
        raise SpecError(f"no earlier study of sweep {spec.name!r} in this working folder to resume: the Optuna SQLite "
                        f"study stays with the driver that started the sweep, not in {redact_url(str(results))} "
                        f"(expected {study}); run --resume from that driver's working folder, or keep the study in a "
                        "database server (search.storage)", key="--resume")
    raise SpecError(f"no earlier study of sweep {spec.name!r} to resume: expected its Optuna SQLite study at {study}",
                    key="--resume")


def check_tracking(spec: SweepSpec, args: argparse.Namespace, uri: str) -> None:
    """The tracking store answers (a server) or can be created (a file); names where the URI came from."""
    from raysweep.tracking import tracking_uri_source

    where = tracking_uri_source(args.tracking_uri, spec.tracking.uri)
    source = (str(args.space) if where == "tracking.uri" else None, where)
    try:
        check_tracking_uri(uri, key=source[1])
    except SpecError as err:
        raise SpecError(err.detail, file=source[0], key=source[1]) from None
