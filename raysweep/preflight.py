"""Checks of the places a sweep writes to, made before anything is created or started.

The results folder, the MLflow tracking store and the Optuna storage are each checked without
creating anything: a folder is looked at, not made; an HTTP tracking server is asked one read-only
question with no retries; a database URL is parsed and its driver loaded, not connected. Each
problem is a `SpecError` naming the flag or key the value came from.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from raysweep.errors import SpecError
from raysweep.redact import redact_url

PROBE_TIMEOUT_S = 10  # one read-only request to the tracking server; a live server answers in milliseconds


def check_results_dir(path: Path, *, key: str = "--results") -> None:
    """`path` is a folder that can be made (or exists) and written to; nothing is created."""
    path = path.expanduser().absolute()
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
