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
from typing import Final

from raysweep.core.errors import SpecError
from raysweep.core.records import Tag
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


def final_checkpoint(run_dir: Path) -> KeptCheckpoint | None:
    """The newest checkpoint under a trial's Train run folder that has its state and digest, or None.

    Newest is by the state file's modification time (keep_copy preserves it), then by name; both
    kinds of folder are looked at, though a trial only ever makes one kind.
    """
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


def verify_checkpoint(kept: KeptCheckpoint, *, run: str = "") -> Path:
    """The checkpoint's folder once its state file's SHA-256 is the recorded one; a one-line
    SpecError naming it (and the run that recorded it) when it is missing or does not match."""
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
