"""A finished trial's kept checkpoint: where it lies, what its SHA-256 is, and what keeping it costs.

A later stage (fine-tuning) finds a pre-training trial's weights from the MLflow experiment alone:
when a trial ends ok, the driver records its final checkpoint's folder and SHA-256 as tags on the
trial's child run (`Tag.CHECKPOINT`, `Tag.CHECKPOINT_SHA256`), and the stage that loads it checks
the SHA-256 again before it trusts a byte of it.

What "the SHA-256 of a checkpoint" means here: the SHA-256 of its state file (`state.pt`, the
`torch.save` of the model's and optimiser's state dicts, the step, the RNG state, ...), exactly the
digest `save_state` writes beside it as `state.sha256`. Everything a model is rebuilt from is in
that one file; the other files of a folder (a worker group's per-rank parameter digests) are
records about it, not part of it. So recording costs one small read (the digest file), never a
pass over a multi-gigabyte state, and the digest that guards a resume guards a fine-tuning too.

Where the final checkpoint lies, under the trial's Ray Train run folder (named by its `TrialKey`,
`TrialKey.train_run_name()`): a worker-group trial's checkpoints are Ray's `checkpoint_<time>`
folders; a local-mode trial's are raysweep's own `checkpoints/checkpoint_<step>` copies. Both keep
the newest two (the last and the one before it, in case the last is torn).

Pure (no Ray, MLflow or Optuna): the callback and the fine-tuning stage both call it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from raysweep.core.errors import SpecError
from raysweep.core.records import Tag
from raysweep.data.store import is_remote, remote
from raysweep.train.worker import DIGEST_FILE, LOCAL_CHECKPOINTS, STATE_FILE

KEPT_COPIES: Final = 2  # checkpoints a trial keeps (Ray's CheckpointConfig(num_to_keep=2), keep_copy(keep=2))
OPTIMIZER_SLOTS: Final = {"sgd": 1, "adamw": 2}  # state tensors per parameter: momentum; Adam's two moments
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class KeptCheckpoint:
    """A trial's final checkpoint: its folder and the SHA-256 of its state file."""

    path: str
    sha256: str

    def tags(self) -> dict[str, str]:
        """The MLflow tags that record it on the trial's child run."""
        return {Tag.CHECKPOINT: self.path, Tag.CHECKPOINT_SHA256: self.sha256}


def checkpoint_sha256(folder: Path) -> str:
    """The SHA-256 of a checkpoint: of its state file's bytes, read in chunks (states may be large)."""
    h = hashlib.sha256()
    with (folder / STATE_FILE).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def recorded_sha256(folder: Path) -> str | None:
    """The SHA-256 `save_state` wrote beside the state (None if the folder has none)."""
    try:
        text = (folder / DIGEST_FILE).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 else None


def final_checkpoint(run_dir: Path | str) -> KeptCheckpoint | None:
    """The newest checkpoint under a trial's Train run folder that has its state and digest, or None.

    Newest is by the state file's modification time (keep_copy preserves it), then by name; both
    kinds of folder are looked at, though a trial only ever makes one kind. `run_dir` may be an
    s3:// or gs:// URL: the checkpoint's path is then a URL too.
    """
    if is_remote(run_dir):
        return _final_remote(str(run_dir))
    run_dir = Path(run_dir)
    candidates = [*run_dir.glob("checkpoint_*"), *(run_dir / LOCAL_CHECKPOINTS).glob("checkpoint_*")]
    found: list[tuple[int, str, Path, str]] = []
    for folder in candidates:
        state, sha = folder / STATE_FILE, recorded_sha256(folder)
        if sha is None or not state.is_file():
            continue
        found.append((state.stat().st_mtime_ns, folder.name, folder, sha))
    if not found:
        return None
    _, _, folder, sha = max(found, key=lambda t: (t[0], t[1]))
    return KeptCheckpoint(str(folder.resolve()), sha)


def _final_remote(url: str) -> KeptCheckpoint | None:
    """`final_checkpoint` in a bucket (through `raysweep.data.store`, as the trial wrote it)."""
    fs, root = remote(url)
    protocol = url.partition("://")[0]
    found: list[tuple[float, str, str, str]] = []
    for base in (root, f"{root}/{LOCAL_CHECKPOINTS}"):
        try:
            entries = fs.ls(base, detail=False)
        except FileNotFoundError:
            continue
        for folder in (e.rstrip("/") for e in entries):
            if not folder.rsplit("/", 1)[-1].startswith("checkpoint_"):
                continue
            try:
                sha = fs.cat_file(f"{folder}/{DIGEST_FILE}").decode().strip()
                modified = fs.modified(f"{folder}/{STATE_FILE}").timestamp()
            except (FileNotFoundError, UnicodeDecodeError):
                continue
            if len(sha) == 64:
                found.append((modified, folder.rsplit("/", 1)[-1], folder, sha))
    if not found:
        return None
    _, _, folder, sha = max(found, key=lambda t: (t[0], t[1]))
    return KeptCheckpoint(f"{protocol}://{folder}", sha)


def read_kept_state(kept: KeptCheckpoint, *, run: str = "") -> dict[str, Any]:
    """A kept checkpoint's state, loaded safely once its SHA-256 is the recorded one (in a bucket:
    read once, hashed and loaded from memory)."""
    if not is_remote(kept.path):
        from raysweep.train.worker import read_state

        return read_state(verify_checkpoint(kept, run=run))  # type: ignore[arg-type]
    import io

    import torch

    data = _remote_state(kept, run)
    _check_sha(kept, hashlib.sha256(data).hexdigest(), run)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _remote_state(kept: KeptCheckpoint, run: str) -> bytes:
    fs, folder = remote(kept.path)
    try:
        return fs.cat_file(f"{folder}/{STATE_FILE}")
    except FileNotFoundError:
        who = f" (recorded by run {run})" if run else ""
        raise SpecError(f"expected a checkpoint state at {kept.path}/{STATE_FILE}{who}, got no such file",
                        key=Tag.CHECKPOINT) from None


def _check_sha(kept: KeptCheckpoint, actual: str, run: str) -> None:
    if actual != kept.sha256:
        who = f" (recorded by run {run})" if run else ""
        raise SpecError(f"expected the checkpoint {kept.path}{who} to have SHA-256 {kept.sha256}, got {actual} "
                        f"(changed or cut short since it was recorded)", key=Tag.CHECKPOINT_SHA256)


def checkpoint_bytes(folder: Path | str) -> int:
    """The bytes of a checkpoint folder's files (a folder, or a URL)."""
    if is_remote(folder):
        fs, path = remote(str(folder))
        return int(sum(fs.du(path, total=False).values()))
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())


def verify_checkpoint(kept: KeptCheckpoint, *, run: str = "") -> Path | str:
    """The checkpoint's folder once its state file's SHA-256 is the recorded one; a one-line
    SpecError naming it (and the run that recorded it) when it is missing or does not match.
    A checkpoint in a bucket is hashed as it streams through `raysweep.data.store`; its URL is returned."""
    if is_remote(kept.path):
        fs, folder_path = remote(kept.path)
        h = hashlib.sha256()
        try:
            with fs.open(f"{folder_path}/{STATE_FILE}", "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            _remote_state(kept, run)  # raises the one-line error
        _check_sha(kept, h.hexdigest(), run)
        return kept.path
    folder = Path(kept.path)
    who = f" (recorded by run {run})" if run else ""
    if not (folder / STATE_FILE).is_file():
        raise SpecError(f"expected a checkpoint state at {folder / STATE_FILE}{who}, got no such file",
                        key=Tag.CHECKPOINT)
    actual = checkpoint_sha256(folder)
    if actual != kept.sha256:
        raise SpecError(f"expected the checkpoint {folder}{who} to have SHA-256 {kept.sha256}, got {actual} "
                        f"(changed or cut short since it was recorded)", key=Tag.CHECKPOINT_SHA256)
    return folder


def state_bytes(params: int, optimizer: str) -> int:
    """About how many bytes one checkpoint's state takes: fp32 weights plus the optimiser's state
    (the step, RNG state and digests are a few kilobytes more)."""
    return 4 * params * (1 + OPTIMIZER_SLOTS.get(optimizer, 2))


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
