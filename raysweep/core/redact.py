"""Keep credentials out of everything raysweep writes: MLflow params, tags, artifacts, printed text.

A secret reaches raysweep in three ways, and each is masked as `***`:
- the password of a URL (`postgresql://user:PASSWORD@host/db`, `http://user:PASSWORD@host`);
- a query or DSN parameter with a secret name (`?token=...`, `&access_key=...`, `password=...`);
- the value of an environment variable with a secret name (`MLFLOW_TRACKING_PASSWORD`,
  `AWS_SECRET_ACCESS_KEY`, `*_TOKEN` ...), wherever that value appears in a text.

Pure string work with no imports from the rest of raysweep, so every layer can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Parts of a variable or parameter name that mark its value as a secret. `key` and `token` count
# only as words of their own (`api_key`, `AWS_ACCESS_KEY_ID`, `HF_TOKEN`), not inside `keyboard` or
# `TOKENIZERS_PARALLELISM`, whose values are not secret and would mask every "false" in a text.
_SECRET_NAME = re.compile(r"passw(or)?d|passphrase|secret|credential|signature|"
                          r"(^|[_\-.])(api|access|private|account|secret)?_?(key|token)s?($|[_\-.])|^(sig|pass)$",
                          re.IGNORECASE)
# Environment variables whose values are secrets although their names say nothing of it.
_SECRET_ENV = frozenset({"DATABASE_URL"})
# Environment values shorter than this are not searched for in text: masking every "1" or "yes"
# would destroy the text and protect nothing.
_MIN_SECRET_LEN = 4
# A URL inside free text: a scheme, '://', and everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# `scheme://user:` where a password may follow: the user part holds no '/', ':', '@', '?' or '#'.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/:@\s?#]*):")
# `name=value` outside URLs (libpq DSNs, command lines): the value ends at whitespace, ',', ';' or '&'.
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>[^\s,;&'\"]+)")


def quiet_mlflow_urls() -> None:
    """Stop MLflow printing "View run ... at: <tracking URI>" (credentials and all) each time a run
    ends; set once, here, for the CLI and for every process that writes to MLflow (the user's
    environment wins)."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def is_secret_name(name: str) -> bool:
    """Whether a variable or parameter called `name` holds a secret (TOKEN, PASSWORD, SECRET, *_KEY ...)."""
    return bool(_SECRET_NAME.search(name)) or name.upper() in _SECRET_ENV


def _environ() -> dict[str, str]:
    """A copy of os.environ. Reading it walks its keys and then looks each up: MLflow's telemetry
    thread unsets _MLFLOW_TELEMETRY_SESSION_ID meanwhile (a KeyError seen in the tests), so read again."""
    for _ in range(5):
        try:
            return dict(os.environ)
        except KeyError:
            continue
    return dict(os.environ)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the secret-named environment variables, longest first (so that a secret which
    contains another is masked whole)."""
    env = _environ() if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact_url(url: str) -> str:
    """`url` with its password and its secret query parameters masked; other text is unchanged."""
    url = _mask_password(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # not a parseable URL (e.g. an unclosed IPv6 bracket): leave it to the text rules
        return url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs):
        return url
    query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*/:@")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _mask_password(url: str) -> str:
    """`scheme://user:***@host...`. The password runs to the last '@' before the query: users paste
    passwords with '@' or '/' unencoded, which would end the netloc early and leak the rest."""
    m = _USERINFO.match(url)
    if not m:
        return url
    head = re.split(r"[?#]", url, maxsplit=1)[0]
    at = head.rfind("@")
    rest = head[m.end():at]
    if at < m.end() or (rest.split("/", 1)[0].isdigit() and "/" in rest):  # host:port/path/@x, no password
        return url
    return f"{m.group(1)}:{MASK}{url[at:]}"


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every URL redacted, every `secret_name=value` masked and every secret value of
    the environment (or of `secrets`, when given) replaced by `***`."""
    out = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    out = _ASSIGNMENT.sub(lambda m: f"{m['name']}={MASK}" if _secret_assignment(m["name"]) else m.group(0), out)
    for value in secret_values() if secrets is None else sorted(set(secrets), key=len, reverse=True):
        if len(value) >= _MIN_SECRET_LEN:
            out = out.replace(value, MASK)
    return out


def _secret_assignment(name: str) -> bool:
    # a bare `key=` is how help texts write placeholders (`--set KEY=VALUE`), not a credential
    return is_secret_name(name) and name.lower() != "key"


def redact(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """Any value as logged: strings redacted, lists, tuples and mapping values redacted item by item;
    other values are returned as they are. Keys are not judged by name here (a `trial_key` is no
    secret): a secret is recognised by its form in a URL or text, or as a value of the environment."""
    found = secret_values() if secrets is None else list(secrets)
    if isinstance(value, str):
        return redact_text(value, found)
    if isinstance(value, Mapping):
        return {k: redact(v, found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v, found) for v in value)
    return value


class RedactingClient:
    """An MLflow client whose writes pass through `redact`: params, tags, run names, dict and text
    artifacts, and text files logged as artifacts (binary files, e.g. PNG plots, go as they are).

    The one point where raysweep's records leave for MLflow, so a new param or tag cannot forget
    to redact. Reads and any other call go to the wrapped client unchanged. Typed loosely on
    purpose: this module imports nothing of MLflow (params and tags are rebuilt by their own type).
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_run(self, experiment_id: str, start_time: int | None = None, tags: Mapping[str, Any] | None = None,
                   run_name: str | None = None) -> Any:
        return self._client.create_run(experiment_id, start_time=start_time, tags=_clean_map(tags),
                                       run_name=redact(run_name))

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kw: Any) -> Any:
        return self._client.log_batch(run_id, metrics=metrics, params=_clean_items(params),
                                      tags=_clean_items(tags), **kw)

    def log_param(self, run_id: str, key: str, value: Any, **kw: Any) -> Any:
        return self._client.log_param(run_id, key, redact(value), **kw)

    def set_tag(self, run_id: str, key: str, value: Any, **kw: Any) -> Any:
        return self._client.set_tag(run_id, key, redact(value), **kw)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> Any:
        return self._client.set_experiment_tag(experiment_id, key, redact(value))

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> Any:
        return self._client.log_dict(run_id, redact(dictionary), artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> Any:
        return self._client.log_text(run_id, redact_text(text), artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> Any:
        import tempfile
        from pathlib import Path

        src = Path(local_path)
        try:
            text = src.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError):  # binary (a plot) or a folder: nothing to redact in text
            return self._client.log_artifact(run_id, local_path, artifact_path)
        clean = redact_text(text)
        if clean == text:
            return self._client.log_artifact(run_id, local_path, artifact_path)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / src.name  # the same name in MLflow, redacted content
            copy.write_text(clean, encoding="utf-8")
            return self._client.log_artifact(run_id, str(copy), artifact_path)


def _clean_map(tags: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if tags is None else {k: redact(v) for k, v in tags.items()}


def _clean_items(items: Any) -> list[Any]:
    """MLflow `Param`/`RunTag` entities (anything with `key` and `value`) rebuilt with clean values."""
    return [type(item)(item.key, redact(item.value)) for item in items or ()]
