"""The sweep specification: one YAML file -> one frozen, validated `SweepSpec`.

Every default lives in the dataclasses below, one line each with the reason. Unknown keys, wrong
types and impossible values raise `SpecError` naming the file, the dotted key, what was expected
and what was given. `--set a.b=value` overrides are applied to the raw mapping before validation,
so they are checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from raysweep.errors import SpecError

Device = Literal["cpu", "xla", "cuda"]
MAX_LR_POINTS = 64  # a grid longer than this is a typo in factor/low/high, not a sweep
MAX_IMAGE_SIZE = 1024
SearcherName = Literal["grid", "monotone", "bracket", "verify", "trend", "tpe", "random"]


@dataclass(frozen=True)
class LadderSpec:
    family: str  # a key of raysweep.models.LADDERS, e.g. "nfnet_cpu", "nfnet_paper", "vit_cpu"
    rungs: tuple[str, ...]  # ordered rung names within the family; the order must be ascending in size

    def validate(self) -> None:
        from raysweep.models import LADDERS

        if self.family not in LADDERS:
            raise SpecError(f"expected one of {sorted(LADDERS)}, got {self.family!r}", key="family")
        known = LADDERS[self.family].rung_names()
        _non_empty(self.rungs, "rungs")
        for i, rung in enumerate(self.rungs):
            if rung not in known:
                raise SpecError(f"expected a rung of {self.family} {list(known)}, got {rung!r}", key=f"rungs[{i}]")
        if len(set(self.rungs)) != len(self.rungs):
            raise SpecError(f"expected distinct rungs, got {list(self.rungs)}", key="rungs")
        # the lattice and the monotone prior assume ascending size: the ladder table's own order
        order = [known.index(r) for r in self.rungs]
        if order != sorted(order):
            ascending = [r for r in known if r in self.rungs]
            raise SpecError(f"expected rungs in ascending size {ascending}, got {list(self.rungs)}", key="rungs")


@dataclass(frozen=True)
class LrSpec:
    base: float = 1.6  # the paper's optimum at small budgets (0.1 x 4096 / 256); the grid is anchored here
    factor: float = 2.0  # the paper tunes on a log grid spaced by factors of 2
    low: float = 0.025  # grid floor (inclusive)
    high: float = 3.2  # grid ceiling (inclusive)

    def validate(self) -> None:
        for key in ("base", "low", "high"):
            _positive(getattr(self, key), key)
        if not self.factor >= 1.01:
            raise SpecError(f"expected a number >= 1.01, got {self.factor!r}", key="factor")
        if not self.low <= self.base <= self.high:
            raise SpecError(
                f"`low <= base <= high` must hold, got (low={self.low}, base={self.base}, high={self.high})",
                key="base",
            )

        n = len(self.grid())
        if n > MAX_LR_POINTS:
            raise SpecError(f"expected at most {MAX_LR_POINTS} grid points between low and high, got {n}",
                            key="factor")

    def grid(self) -> tuple[float, ...]:
        """Ascending LRs base * factor**k that lie within [low, high] (a tolerance absorbs rounding)."""
        k_lo = math.ceil(math.log(self.low / self.base, self.factor) - 1e-9)
        k_hi = math.floor(math.log(self.high / self.base, self.factor) + 1e-9)
        if k_hi - k_lo + 1 > MAX_LR_POINTS:  # validate() reports it; never build a huge grid
            k_hi = k_lo + MAX_LR_POINTS
        # 6 significant figures keep grid points readable and distinct for any factor > 1.0001
        return tuple(float(f"{self.base * self.factor**k:.6g}") for k in range(k_lo, k_hi + 1))


@dataclass(frozen=True)
class DataAssumption:
    """What `--dry-run` plans with where the data cannot be read on this machine (a 4-billion-image
    folder that only the cluster mounts). Only a dry run uses it: a real run reads the data."""

    train_examples: int  # the training split's size (after the validation hold-out)
    num_classes: int  # sizes the classifier, whose FLOPs count
    in_chans: int = 3  # colour images

    def validate(self) -> None:
        _positive(self.train_examples, "train_examples")
        if self.num_classes < 2:
            raise SpecError(f"expected at least 2 classes, got {self.num_classes}", key="num_classes")
        if self.in_chans not in (1, 3):
            raise SpecError(f"expected 1 or 3 channels, got {self.in_chans}", key="in_chans")


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "mnist5k"  # a key of raysweep.data.DATASETS
    path: str | None = None  # root folder for `image_folder` (one sub-folder per class)
    val_fraction: float = 0.1  # held out from training with `split_seed`; never trained on
    split_seed: int = 0  # fixes the train/validation split independently of the trial seed
    image_size: int = 32  # 28x28 digits are padded to 32 so four stride-2 stages divide evenly
    train_subset: int | None = None  # use only the first N shuffled training examples (benchmarks)
    assume: DataAssumption | None = None  # for --dry-run only, where `path` is not readable here

    def validate(self) -> None:
        from raysweep.data import DATASETS

        if self.dataset not in DATASETS:
            raise SpecError(f"expected one of {sorted(DATASETS)}, got {self.dataset!r}", key="dataset")
        if self.dataset == "image_folder" and not self.path:
            raise SpecError("expected a folder path for dataset image_folder, got nothing", key="path")
        if not 0 < self.val_fraction < 1:
            raise SpecError(f"expected a fraction in (0, 1), got {self.val_fraction!r}", key="val_fraction")
        _positive(self.image_size, "image_size")
        if self.image_size > MAX_IMAGE_SIZE:
            raise SpecError(f"expected at most {MAX_IMAGE_SIZE} pixels, got {self.image_size}", key="image_size")
        if self.train_subset is not None:
            _positive(self.train_subset, "train_subset")


@dataclass(frozen=True)
class OptimSpec:
    momentum: float = 0.9  # NFNet recipe: SGD with Nesterov momentum 0.9
    nesterov: bool = True
    agc_clip: float = 0.01  # AGC lambda for batch 1024-4096 in the NFNet paper; 0 turns AGC off
    agc_eps: float = 1e-3  # floor on the weight norm in AGC
    weight_decay: float = 1e-5  # NFNet: 2e-5 on ImageNet, 1e-6 on JFT; never on gains and biases
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.05  # share of the budget's steps spent in linear warm-up

    def validate(self) -> None:
        if not 0 <= self.momentum < 1:
            raise SpecError(f"expected a number in [0, 1), got {self.momentum!r}", key="momentum")
        for key in ("agc_clip", "weight_decay"):
            if getattr(self, key) < 0:
                raise SpecError(f"expected a number >= 0, got {getattr(self, key)!r}", key=key)
        _positive(self.agc_eps, "agc_eps")
        if not 0 <= self.label_smoothing < 1:
            raise SpecError(f"expected a number in [0, 1), got {self.label_smoothing!r}", key="label_smoothing")
        if not 0 <= self.warmup_fraction < 1:
            raise SpecError(f"expected a fraction in [0, 1), got {self.warmup_fraction!r}", key="warmup_fraction")


@dataclass(frozen=True)
class TpuSpec:
    """One TPU pod slice per trial, named as Ray Train's ScalingConfig names it; Ray reserves the
    whole slice and runs one worker per host (rules in raysweep/tpu.py, pinned against Ray's)."""

    accelerator_type: str  # Ray's form: TPU-V4, TPU-V5P, TPU-V5LITEPOD, TPU-V6E, ... (ray.util.accelerators)
    topology: str  # chips along each axis, e.g. 2x2x2 (8 chips: a v4-16 of 2 hosts)

    def validate(self) -> None:
        from raysweep import tpu

        try:
            tpu.version(self.accelerator_type)
        except ValueError as err:
            raise SpecError(str(err), key="accelerator_type") from None
        try:
            tpu.check(self.accelerator_type, self.topology)
        except ValueError as err:
            raise SpecError(str(err), key="topology") from None

    def chips(self) -> int:
        from raysweep import tpu

        return tpu.chips(self.topology)

    def chips_per_host(self) -> int:
        from raysweep import tpu

        return tpu.chips_per_host(self.accelerator_type, self.topology)

    def hosts(self) -> int:
        """Ray Train workers per trial: one per TPU VM of the slice."""
        from raysweep import tpu

        return tpu.hosts(self.accelerator_type, self.topology)

    def pod_type(self) -> str:
        """`v4-16`: what Ray's `ray.io/tpu-pod-type` label and `TPU-<pod type>-head` resource say."""
        from raysweep import tpu

        return tpu.pod_type(self.accelerator_type, self.topology)


@dataclass(frozen=True)
class ResourcesSpec:
    device: Device = "cpu"  # cpu (gloo), xla (PJRT: CPU or TPU), cuda (nccl)
    # 0 = Ray Train local mode: the loop runs inside the Tune trial, no worker group (about 25 s
    # cheaper per trial on a small CPU machine); >= 1 = a Ray Train worker group of that size.
    workers_per_trial: int = 0
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    concurrent_trials: int = 2  # trials running side by side
    max_failures: int = 0  # Ray Train restarts of a worker group from its latest checkpoint
    tpu: TpuSpec | None = None  # a TPU pod slice per trial (device xla); None: no TPU

    def validate(self) -> None:
        if self.workers_per_trial < 0:
            raise SpecError(f"expected an integer >= 0, got {self.workers_per_trial!r}", key="workers_per_trial")
        _positive(self.cpus_per_worker, "cpus_per_worker")
        if self.gpus_per_worker < 0:
            raise SpecError(f"expected an integer >= 0, got {self.gpus_per_worker!r}", key="gpus_per_worker")
        _positive(self.concurrent_trials, "concurrent_trials")
        if self.max_failures < 0:
            raise SpecError(f"expected an integer >= 0, got {self.max_failures!r}", key="max_failures")
        if self.tpu is not None:
            self._validate_tpu(self.tpu)
        elif self.device == "xla" and self.workers_per_trial > 1:
            # multi-host XLA (one worker per TPU host, SPMD over a global mesh) is not built yet: the
            # workers would train unsynchronised replicas
            raise SpecError(f"expected at most 1 worker with device xla, got {self.workers_per_trial}",
                            key="workers_per_trial")
        if self.device == "cuda" and self.gpus_per_worker == 0:
            raise SpecError("expected gpus_per_worker >= 1 with device cuda, got 0", key="gpus_per_worker")

    def _validate_tpu(self, tpu: TpuSpec) -> None:
        # Ray Train's ScalingConfig rules for use_tpu (ray/train/v2/api/config.py), checked here so
        # that a bad slice is a one-line error instead of a ValueError inside every trial.
        if self.device != "xla":
            raise SpecError(f"expected device xla with a TPU slice (resources.tpu), got {self.device!r}",
                            key="device")
        if self.gpus_per_worker:
            raise SpecError(f"expected no GPUs with a TPU slice, got {self.gpus_per_worker}", key="gpus_per_worker")
        hosts = tpu.hosts()
        if self.workers_per_trial and self.workers_per_trial % hosts:
            raise SpecError(f"expected 0 (one worker per host) or a multiple of the {hosts} hosts of a "
                            f"{tpu.pod_type()} slice, got {self.workers_per_trial}", key="workers_per_trial")

    def workers(self) -> int:
        """Ray Train workers per trial; 0 is local mode, except on a TPU slice (one per host)."""
        if self.tpu is not None:
            return self.workers_per_trial or self.tpu.hosts()
        return self.workers_per_trial


@dataclass(frozen=True)
class SearchSpec:
    searcher: SearcherName = "monotone"  # the paper's 2-trial rule; `grid` tries every LR in every cell
    slowness: int = 1  # monotone: the optimum is at most this many grid steps below its bound
    tie_tolerance: float = 0.0  # relative loss difference treated as a tie (ties go to the larger LR)
    trials_per_cell: int = 2  # budget per cell for tpe / random
    max_retries: int = 2  # a failed trial (crash, OOM, pre-emption) is re-run this often, then counts as diverged
    storage: str | None = None  # Optuna storage URL; default: $RAYSWEEP_OPTUNA_STORAGE, else sqlite next to the results
    seed: int = 0  # seeds the tpe / random samplers

    def validate(self) -> None:
        if self.slowness < 0:
            raise SpecError(f"expected an integer >= 0, got {self.slowness!r}", key="slowness")
        if self.tie_tolerance < 0:
            raise SpecError(f"expected a number >= 0, got {self.tie_tolerance!r}", key="tie_tolerance")
        _positive(self.trials_per_cell, "trials_per_cell")
        if self.max_retries < 0:
            raise SpecError(f"expected an integer >= 0, got {self.max_retries!r}", key="max_retries")


@dataclass(frozen=True)
class TrackingSpec:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str = "raysweep"


@dataclass(frozen=True)
class SweepSpec:
    name: str  # names the sweep: the MLflow parent run and the Ray Tune experiment folder
    ladder: LadderSpec
    epochs: tuple[float, ...]  # epoch budgets, ascending; 0.25 = a quarter pass over the training split
    lr: LrSpec = field(default_factory=LrSpec)
    data: DataSpec = field(default_factory=DataSpec)
    batch_size: int = 64  # global batch, split across the workers of a trial
    eval_batch_size: int = 500  # fixed so that XLA compiles one eval graph
    optim: OptimSpec = field(default_factory=OptimSpec)
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    seed: int = 0  # trial seed: init and data order
    description: str = ""

    def validate(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise SpecError(f"expected a name of letters, digits, '-', '_' or '.', got {self.name!r}", key="name")
        _non_empty(self.epochs, "epochs")
        for i, e in enumerate(self.epochs):
            _positive(e, f"epochs[{i}]")
        if list(self.epochs) != sorted(set(self.epochs)):
            raise SpecError(f"expected distinct epoch budgets in ascending order, got {list(self.epochs)}", key="epochs")
        _positive(self.batch_size, "batch_size")
        _positive(self.eval_batch_size, "eval_batch_size")
        workers = max(1, self.resources.workers_per_trial)
        if self.batch_size % workers:
            raise SpecError(
                f"expected a multiple of resources.workers_per_trial ({workers}), got {self.batch_size}",
                key="batch_size",
            )
        tpu = self.resources.tpu
        if tpu is not None and self.batch_size % tpu.chips():
            # SPMD shards the batch over every chip of the slice: an uneven share is padding or an error
            raise SpecError(f"expected a multiple of the {tpu.chips()} chips of a {tpu.pod_type()} slice, "
                            f"got {self.batch_size}", key="batch_size")

    # Derived views -------------------------------------------------------------------------
    def lr_grid(self) -> tuple[float, ...]:
        return self.lr.grid()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Loading -------------------------------------------------------------------------------------


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read, override and validate a search-space YAML file."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", file=file) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"expected valid YAML, got a syntax error{where}: {problem}", file=file) from None
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping at the top level, got {type(raw).__name__}", file=file)
    raw = apply_overrides(raw, overrides, file=file)
    return spec_from_dict(raw, file=file)


def spec_from_dict(raw: Mapping[str, Any], *, file: str = "<dict>") -> SweepSpec:
    try:
        return build(SweepSpec, raw, "")
    except SpecError as err:
        raise err.located(file=file) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...], *, file: str) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (value parsed as YAML) onto a copy of the raw mapping."""
    import copy

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"expected --set KEY=VALUE, got {item!r}", file=file)
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise SpecError(f"expected a dotted key such as optim.momentum, got {key!r}", file=file)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _check_override_path(parts, key, file)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError(f"expected a mapping to set {parts[-1]!r} in, got {child!r}", file=file, key=part)
            node = child
        node[parts[-1]] = value
    return out


def _check_override_path(parts: list[str], key: str, file: str) -> None:
    cls: Any = SweepSpec
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            raise SpecError(f"{'.'.join(parts[:depth])} is not a section, cannot set {part!r}", file=file, key=key)
        hints = typing.get_type_hints(cls)
        if part not in hints:
            names = [f.name for f in dataclasses.fields(cls)]
            raise SpecError(f"unknown key; expected one of {names}", file=file, key=key)
        cls = _optional_section(hints[part])


def _optional_section(tp: Any) -> Any:
    """`TpuSpec | None` -> TpuSpec, so that `--set resources.tpu.topology=2x2x2` reaches inside it."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return tp


# A small typed builder: dataclass fields drive the checks, so defaults and types live in one place.


def build(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpecError(f"expected a mapping, got {_show(data)}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise SpecError(f"unknown key; expected one of {list(fields)}", key=_join(key, str(unknown[0])))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError("required key is missing", key=sub)
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except SpecError as err:
            raise err.located(key_prefix=key or None) from None
    return obj


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, key)
    if origin is Literal:
        if value not in args:
            raise SpecError(f"expected one of {list(args)}, got {_show(value)}", key=key)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(f"expected a list, got {_show(value)}", key=key)
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"expected true or false, got {_show(value)}", key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"expected an integer, got {_show(value)}", key=key)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"expected a number, got {_show(value)}", key=key)
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got {_show(value)}", key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"expected a string, got {_show(value)}", key=key)
        return value
    raise AssertionError(f"unsupported field type {tp!r} at {key}")  # an internal invariant


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing (null)"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise SpecError(f"expected a number > 0, got {value!r}", key=key)


def _non_empty(value: tuple[Any, ...], key: str) -> None:
    if not value:
        raise SpecError("expected a non-empty list, got []", key=key)
