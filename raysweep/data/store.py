"""One filesystem layer for datasets on a local disk, `file://`, `gs://` and `s3://` (fsspec).

Endpoints and credentials come from the environment, as each store's own client reads them, so a
test reaches a local S3 server through the code path production uses:
- s3://: the AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE / instance role);
  the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (MinIO, Ceph, moto, a private cloud).
- gs://: Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS, the metadata server); the
  endpoint from STORAGE_EMULATOR_HOST, which gcsfs reads itself.

Store errors become one-line `SpecError`s naming the URL (with credentials redacted), or an
`OSError` for a store that fails mid-read (the trial fails and resumes later from its checkpoint).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from raysweep.core.errors import SpecError
from raysweep.core.redact import redact_url

T = TypeVar("T")

PROTOCOLS = ("file", "s3", "gs")
RETRIES = 4  # attempts at a transient store error before the read fails (0.5, 1, 2 s backoff)

_FILESYSTEMS: dict[tuple[int, str], Any] = {}  # (pid, protocol): one client per process, rebuilt after fork


def split_url(url: str) -> tuple[str, str]:
    """(protocol, path without protocol and without a trailing slash); a bare path is `file`."""
    protocol, sep, rest = url.partition("://")
    if not sep:
        protocol, rest = "file", os.path.abspath(os.path.expanduser(url))
    if protocol not in PROTOCOLS:
        raise SpecError(f"expected a path or a {', '.join(p + '://' for p in PROTOCOLS)} URL, got {redact_url(url)}",
                        key="url")
    return protocol, rest.rstrip("/") or "/"


def store_options(protocol: str) -> dict[str, Any]:
    """fsspec options for `protocol`, read from the environment."""
    if protocol == "s3":
        # raysweep's own retries (`call`) own the backoff; the client's are kept short, or the two multiply
        options: dict[str, Any] = {"use_listings_cache": False, "config_kwargs": {
            "connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 2, "mode": "standard"}}}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
        return options
    if protocol == "gs":
        return {"use_listings_cache": False}
    return {}


def filesystem(protocol: str) -> Any:
    """This process's fsspec filesystem for `protocol` (a fresh one in a forked loader worker)."""
    key = (os.getpid(), protocol)
    if key not in _FILESYSTEMS:
        import fsspec

        if protocol in ("s3", "gs"):
            module, package = {"s3": ("s3fs", "s3fs"), "gs": ("gcsfs", "gcsfs")}[protocol]
            from raysweep.data.sources import require_package

            require_package(f"shards on {protocol}://", module, package)
        _FILESYSTEMS[key] = fsspec.filesystem(protocol, skip_instance_cache=True, **store_options(protocol))
    return _FILESYSTEMS[key]


def forget_clients() -> None:
    """Drop the cached clients (after the environment's endpoint or credentials changed)."""
    _FILESYSTEMS.clear()


def join(protocol: str, root: str, name: str) -> str:
    return f"{root}/{name}" if root != "/" else f"/{name}"


def display(protocol: str, path: str) -> str:
    return redact_url(path if protocol == "file" else f"{protocol}://{path}")


def describe_store_error(err: BaseException) -> str | None:
    """What the user must fix, for errors that retrying cannot fix; None for a transient one."""
    text = f"{type(err).__name__}: {err}"
    code = _error_code(err)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
                "InvalidToken", "AuthorizationHeaderMalformed", "403", "401") or isinstance(err, PermissionError):
        return f"the store refused the credentials ({code or type(err).__name__}): check AWS_ACCESS_KEY_ID/" \
               f"AWS_SECRET_ACCESS_KEY (s3) or GOOGLE_APPLICATION_CREDENTIALS (gs)"
    if code == "NoSuchBucket" or "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return "no such bucket"
    if isinstance(err, FileNotFoundError):
        return "no such file or folder"
    if "Unable to locate credentials" in text or "NoCredentialsError" in text:
        return "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    return None


def _error_code(err: BaseException) -> str:
    for e in (err, err.__cause__, err.__context__):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        code = getattr(e, "code", None)
        if isinstance(code, int) and code in (401, 403):
            return str(code)
    return ""


def call(what: str, fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """fn() with retries and backoff on transient store errors; a `SpecError` naming `what` for one
    the user must fix; an `OSError` naming `what` when the store stays down."""
    for attempt in range(RETRIES):
        try:
            return fn()
        except SpecError:
            raise
        except Exception as err:  # noqa: BLE001 - every store error is sorted into fix-it or retry
            reason = describe_store_error(err)
            if reason is not None:
                raise SpecError(f"cannot read {what}: {reason}", key="url") from None
            if attempt == RETRIES - 1:
                raise OSError(f"cannot read {what} after {RETRIES} attempts: {type(err).__name__}: "
                              f"{' '.join(str(err).split())[:200]}") from None
            sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


# --- Results and checkpoints on object storage (`--results s3://bucket/prefix`) ------------------
# The same clients as the shards: endpoint and credentials from each process's environment (never
# in a pickle, a Ray runtime environment or a record), and Ray Train/Tune reach them as a pyarrow
# filesystem over the fsspec one.

REMOTE = ("s3", "gs")


def is_remote(location: str | os.PathLike[str]) -> bool:
    """An s3:// or gs:// URL (not a path, not file://)."""
    protocol, sep, _ = str(location).partition("://")
    return bool(sep) and protocol in REMOTE


def remote(url: str) -> tuple[Any, str]:
    """(this process's fsspec filesystem, the path on it) for an s3:// or gs:// URL."""
    protocol, path = split_url(url)
    return filesystem(protocol), path


def arrow_filesystem(url: str) -> tuple[Any, str]:
    """(a pyarrow filesystem, the path on it) for Ray's `storage_filesystem`/`storage_path`. It pickles
    as the fsspec client's options (the endpoint), so each Ray process builds its own client and reads
    its credentials from its own environment."""
    import pyarrow.fs

    fs, path = remote(url)
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path


def check_writable_location(url: str) -> None:
    """The bucket of `url` exists and the credentials are taken (one listing; nothing is created).
    A one-line `SpecError` otherwise; a prefix need not exist (it is made by writing)."""
    fs, path = remote(url)
    bucket = path.split("/", 1)[0]
    call(display(split_url(url)[0], path), lambda: fs.ls(bucket, detail=False))


DRIVER_FOLDER = "raysweep_results"  # in the driver's working folder, as the default --results


def driver_folder(url: str) -> Path:
    """Where a sweep with its results in a bucket keeps what cannot live there: the Optuna SQLite
    study (SQLite needs a local file; `search.storage` names a database server instead), the
    tracking journal and Ray's driver log. `./raysweep_results/<protocol>/<bucket>/<prefix>`, so the
    same command (and `--resume`) from the same folder finds them again."""
    protocol, path = split_url(url)
    return Path(DRIVER_FOLDER).absolute() / protocol / path
