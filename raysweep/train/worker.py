"""The Ray Train entry of a trial: prepare the process for its device, wire reports and checkpoints to Ray.

Runs on every worker of a trial's worker group, or inside the Tune trial process itself when the
trial uses Ray Train's local mode (`workers_per_trial: 0`). In local mode Ray wants `ray.tune`'s
report and checkpoint API; in a worker group, `ray.train`'s (forwarded to Tune by
`TuneReportCallback`). This module hides the difference from the loop; the device object
(`raysweep.devices`) hides the device.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from raysweep.config.trial import TrialConfig
from raysweep.core.records import M, TrialStatus
from raysweep.data.store import is_remote, remote
from raysweep.devices import device_for
from raysweep.train.loop import Start, run_training

STATE_FILE = "state.pt"
DIGEST_FILE = "state.sha256"
LOCAL_CHECKPOINTS = "checkpoints"  # a local-mode trial's own copies, beside its host records
PARAMS_DIGEST_FILE = "params.rank{rank}.sha256"  # in a worker group's final checkpoint, one per rank


def save_state(state: dict[str, Any], folder: Path) -> None:
    """The state and its SHA-256: a checkpoint cut short by a crash is told apart from a good one."""
    torch.save(state, folder / STATE_FILE)
    (folder / DIGEST_FILE).write_text(hashlib.sha256((folder / STATE_FILE).read_bytes()).hexdigest())


def read_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's state, loaded safely (tensors and plain data only); ValueError if it is torn."""
    data = (folder / STATE_FILE).read_bytes()
    digest = folder / DIGEST_FILE
    if not digest.exists() or digest.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise ValueError(f"{folder.name}: the state does not match its digest (cut short while written?)")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# What reading a torn, truncated or foreign checkpoint raises: it is skipped for an older one.
UNREADABLE = (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError)


def first_readable(candidates: Iterable[tuple[str, Callable[[], AbstractContextManager[Path]]]]
                   ) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The state of the first candidate (name, opener of its folder) that reads whole, newest first:
    (state, its name, the names skipped as unreadable); (None, None, skipped) when none does."""
    skipped: list[str] = []
    for name, open_folder in candidates:
        with open_folder() as folder:
            try:
                return read_state(folder), name, skipped
            except UNREADABLE:
                skipped.append(name)
    return None, None, skipped


def newest_readable(folders: list[Path]) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The state of the first readable folder (newest first), its name, and the names skipped."""
    def at(folder: Path) -> Callable[[], AbstractContextManager[Path]]:
        return lambda: contextlib.nullcontext(folder)

    return first_readable((f.name, at(f)) for f in folders)


def keep_copy(src: Path, folder: Path | str, *, step: int, keep: int = 2) -> None:
    """Copy a checkpoint into `folder` as checkpoint_<step> (renamed into place whole), keep the newest.
    `folder` may be an s3:// or gs:// URL (`keep_copy_remote`)."""
    import shutil

    if is_remote(folder):
        keep_copy_remote(src, str(folder), step=step, keep=keep)
        return
    folder = Path(folder)

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"checkpoint_{step:012d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(folder.glob("checkpoint_*"), reverse=True)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def keep_copy_remote(src: Path, url: str, *, step: int, keep: int = 2) -> None:
    """`keep_copy` into a bucket. An object store has no rename: the state goes first and its digest
    last, so a copy cut short has no digest (or one that does not match) and is skipped on resume."""
    fs, root = remote(url)
    final = f"{root.rstrip('/')}/checkpoint_{step:012d}"
    if fs.exists(final):
        fs.rm(final, recursive=True)
    files = sorted((p for p in src.iterdir() if p.is_file()), key=lambda p: (p.name == DIGEST_FILE, p.name))
    for f in files:
        fs.put_file(str(f), f"{final}/{f.name}")
    for old in sorted(_remote_checkpoints(fs, root), reverse=True)[keep:]:
        fs.rm(old, recursive=True)


def _remote_checkpoints(fs: Any, root: str) -> list[str]:
    """The checkpoint_* folders under `root` on an fsspec filesystem (paths without protocol)."""
    try:
        entries = fs.ls(root.rstrip("/"), detail=False)
    except FileNotFoundError:
        return []
    return [e.rstrip("/") for e in entries if e.rstrip("/").rsplit("/", 1)[-1].startswith("checkpoint_")]


def newest_readable_remote(url: str) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """`newest_readable` over the keyed copies in a bucket, each fetched into a temporary folder."""
    fs, root = remote(url)

    def opener(path: str) -> Callable[[], AbstractContextManager[Path]]:
        @contextlib.contextmanager
        def fetched() -> Iterator[Path]:
            with tempfile.TemporaryDirectory(prefix="raysweep-keyed-") as d:
                for name in (STATE_FILE, DIGEST_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        fs.get_file(f"{path}/{name}", str(Path(d) / name))
                yield Path(d)
        return fetched

    found = sorted(_remote_checkpoints(fs, root), reverse=True)
    return first_readable((p.rsplit("/", 1)[-1], opener(p)) for p in found)


def load_resume_state(ckpt: Any) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The newest readable state among the latest checkpoint and the older ones kept beside it
    (`CheckpointConfig(num_to_keep=2)`): (state, its checkpoint's name, names skipped as unreadable)."""
    import pyarrow.fs

    fs, path = ckpt.filesystem, ckpt.path
    parent = path.rstrip("/").rsplit("/", 1)[0]
    infos = fs.get_file_info(pyarrow.fs.FileSelector(parent))
    older = sorted((i.path for i in infos if i.type == pyarrow.fs.FileType.Directory
                    and i.base_name.startswith("checkpoint_") and i.path.rstrip("/") != path.rstrip("/")),
                   reverse=True)  # Ray names them checkpoint_<timestamp>: newest first

    def opener(candidate: str) -> Callable[[], AbstractContextManager[Path]]:
        return lambda: _as_path(type(ckpt)(candidate, filesystem=fs).as_directory())

    return first_readable((c.rstrip("/").rsplit("/", 1)[-1], opener(c)) for c in [path, *older])


@contextlib.contextmanager
def _as_path(ctx: AbstractContextManager[str]) -> Iterator[Path]:
    with ctx as d:
        yield Path(d)


def _write_host_record(folder: str, cfg: TrialConfig, runtime: dict[str, Any], *, rank: int, world: int,
                       data: tuple[int, int], devices: int) -> None:
    """One JSON file per worker beside the trial's checkpoints: where it ran and what share it read.
    On a TPU slice this is how a user (and the tests) see that a trial held one whole slice."""
    import json
    import socket

    import ray

    ctx = ray.get_runtime_context()
    record = {"trial": cfg.key.token(), "rank": rank, "world": world, "data_rank": data[0], "data_world": data[1],
              "devices_in_group": devices, "hostname": socket.gethostname(), "pid": os.getpid(),
              "node_id": ctx.get_node_id(), "node_labels": dict(ctx.get_node_labels()), **runtime}
    text = json.dumps(record, indent=1, sort_keys=True, default=str)
    if is_remote(folder):
        fs, root = remote(folder)
        fs.pipe_file(f"{root}/rank-{rank}.json", text.encode())
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"rank-{rank}.json").write_text(text)


def keyed_folder(hosts_dir: str) -> Path | str:
    """A local-mode trial's keyed copies: `checkpoints` beside its host records (a Path, or a URL)."""
    if is_remote(hosts_dir):
        return f"{hosts_dir.rstrip('/').rsplit('/', 1)[0]}/{LOCAL_CHECKPOINTS}"
    return Path(hosts_dir).parent / LOCAL_CHECKPOINTS


def param_digest(state_dict: dict[str, Any]) -> str:
    """SHA-256 over a model's tensors (names, dtypes, shapes and bytes, in name order): equal for
    bit-identical replicas."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(state_dict[name].shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train_loop_per_worker(config: dict[str, Any], start_of: Callable[[TrialConfig], Start] | None = None) -> None:
    """`start_of`: the trial's start when it is not a fresh model (fine-tuning passes one)."""
    import ray.train
    import ray.tune
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    cfg = TrialConfig.from_dict(config["trial"])
    device = device_for(cfg.spec.resources)
    device.setup_process(compile_cache=config.get("compile_cache"))
    local = _in_tune_session()  # True only in Ray Train local mode, where the loop runs in the trial
    api = ray.tune if local else ray.train
    if local:
        rank, world = 0, 1
    else:
        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
    place = device.placement(rank=rank, world=world)
    if config.get("hosts_dir"):
        _write_host_record(config["hosts_dir"], cfg, device.describe_process(), rank=rank, world=world,
                           data=(place.data_rank, place.data_world), devices=place.devices_in_group)

    # Local mode: Tune keeps a trial's checkpoints under the Tune trial, which a resumed sweep (a new
    # driver, new Tune trials) does not see; raysweep keeps its own copies under the trial's key.
    # The same storage as Ray's (a folder, or a bucket through raysweep.data.store).
    keyed = keyed_folder(config["hosts_dir"]) if local and config.get("hosts_dir") else None
    resume = None
    ckpt = api.get_checkpoint()
    used: str | None = None
    skipped: list[str] = []
    if ckpt is not None:
        resume, used, skipped = load_resume_state(ckpt)
    if resume is None and keyed is not None and is_remote(keyed):
        resume, used, more = newest_readable_remote(str(keyed))
        skipped += more
    elif resume is None and isinstance(keyed, Path) and keyed.is_dir():
        resume, used, more = newest_readable(sorted(keyed.glob("checkpoint_*"), reverse=True))
        skipped += more
    if (ckpt is not None or used is not None) and rank == 0:
        note = f"; skipped unreadable {', '.join(skipped)}" if skipped else ""
        print(f"raysweep: {cfg.cell} lr={cfg.lr:g} resumes from step {resume['step'] if resume else 0} "
              f"({used or 'no readable checkpoint: from the start'}){note}", flush=True)

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        # In a worker group, each rank leaves a digest of its parameters in the final checkpoint
        # (Ray merges the ranks' files into one folder): the record that DDP kept the replicas equal.
        final = state is not None and world > 1 and metrics.get(M.STATUS) == TrialStatus.OK.value
        if state is None or (rank != 0 and not final):
            api.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="raysweep-ckpt-") as d:
            if rank == 0:
                save_state(state, Path(d))
            if final:
                (Path(d) / PARAMS_DIGEST_FILE.format(rank=rank)).write_text(param_digest(state["model"]) + "\n")
            if keyed is not None:
                keep_copy(Path(d), keyed, step=int(state["step"]))
            api.report(metrics, checkpoint=api.Checkpoint.from_directory(d))

    run_training(cfg, report, place, resume, start=None if start_of is None else start_of(cfg))
