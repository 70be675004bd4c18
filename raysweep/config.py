"""The sweep specification: one YAML file -> one frozen, validated `SweepSpec`.

Every default lives in the dataclasses below, one line each with the reason. Unknown keys, wrong
types and impossible values raise `SpecError` naming the file, the dotted key, what was expected
and what was given. `--set a.b=value` overrides are applied to the raw mapping before validation,
so they are checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from raysweep.errors import SpecError

if typing.TYPE_CHECKING:
    from raysweep.models import LadderRef

Device = Literal["cpu", "xla", "cuda"]
MAX_LR_POINTS = 64  # a grid longer than this is a typo in factor/low/high, not a sweep
MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 10_000.0  # a budget past this is a typo (1e308), and would plan an endless list of eval steps
MAX_NAME_LEN = 100  # the name becomes folder names (Ray Tune's experiment folder) and MLflow run names
SEED_RANGE = 2**32  # seeds feed torch, NumPy's SeedSequence and Optuna's RandomState: [0, 2**32) suits all
SearcherName = Literal["grid", "monotone", "bracket", "verify", "trend", "tpe", "random"]
PRIOR_SEARCHERS: tuple[SearcherName, ...] = ("monotone", "bracket", "verify", "trend")  # the paper's prior
# The dataset names raysweep.data registers (a test checks that the two agree). Named here, not
# imported from raysweep.data, so that the config needs nothing from the data layer, which imports it.
DatasetName = Literal["mnist5k", "fashion_mnist", "digits", "image_folder", "shards"]


@dataclass(frozen=True)
class TimmRungSpec:
    """One rung of a ladder written in the search-space file: a timm model and its arguments."""

    name: str  # the rung's name in the lattice, MLflow and tables, e.g. resnet_s
    model: str  # a timm model name (timm.list_models()), built from scratch with no pretrained weights
    # keyword arguments for timm.create_model (JSON-like values); num_classes, in_chans and img_size
    # come from the data and are refused here. Not hashed: a dict is not hashable (eq still compares it).
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)

    def validate(self) -> None:
        from raysweep.models.timm_rungs import check_kwargs, check_model_name

        _check_name(self.name, "name")
        try:
            check_model_name(self.model)
        except SpecError as err:
            raise err.located(key_prefix="model") from None
        try:
            check_kwargs(self.kwargs)
        except SpecError as err:
            raise err.located(key_prefix="kwargs") from None


@dataclass(frozen=True)
class LadderSpec:
    # a key of raysweep.models.LADDERS ("nfnet_cpu", "nfnet_paper", "vit_cpu", "vit_paper"), or, with
    # `timm`, a new name for the ladder this file defines (MLflow records it as the `family` param)
    family: str
    # the rungs to sweep, ascending in size; with `timm`, empty means every rung defined there, in order
    rungs: tuple[str, ...] = ()
    # rungs defined in this file, smallest first (checked by measuring their parameters): any timm model
    timm: tuple[TimmRungSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.rungs and self.timm:  # frozen: the one place a default is derived from another field
            object.__setattr__(self, "rungs", tuple(r.name for r in self.timm))

    def validate(self) -> None:
        from raysweep.models import LADDERS

        if self.timm:
            self._validate_defined(LADDERS)
            return
        if self.family not in LADDERS:
            raise SpecError(f"expected one of {sorted(LADDERS)}, or rungs defined under ladder.timm, "
                            f"got {self.family!r}", key="family")
        known = LADDERS[self.family].rung_names()
        if not self.rungs:
            raise SpecError(f"expected a non-empty list of rungs of {self.family} {list(known)}, got []", key="rungs")
        for i, rung in enumerate(self.rungs):
            if rung not in known:
                raise SpecError(f"expected a rung of {self.family} {list(known)}, got {rung!r}", key=f"rungs[{i}]")
        self._check_order(known)

    def _validate_defined(self, registered: Mapping[str, Any]) -> None:
        if self.family in registered:
            raise SpecError(f"expected a new family name for the rungs under ladder.timm, got {self.family!r}, "
                            "a built-in ladder", key="family")
        _check_name(self.family, "family")
        known = tuple(r.name for r in self.timm)
        seen: set[str] = set()
        for i, name in enumerate(known):
            if name in seen:
                raise SpecError(f"expected distinct rung names, got {name!r} twice", key=f"timm[{i}].name")
            seen.add(name)
        for i, rung in enumerate(self.rungs):
            if rung not in known:
                raise SpecError(f"expected a rung defined under ladder.timm {list(known)}, got {rung!r}",
                                key=f"rungs[{i}]")
        self._check_order(known)

    def _check_order(self, known: tuple[str, ...]) -> None:
        if len(set(self.rungs)) != len(self.rungs):
            raise SpecError(f"expected distinct rungs, got {list(self.rungs)}", key="rungs")
        # the lattice and the monotone prior assume ascending size: the ladder's own order
        order = [known.index(r) for r in self.rungs]
        if order != sorted(order):
            ascending = [r for r in known if r in self.rungs]
            raise SpecError(f"expected rungs in ascending size {ascending}, got {list(self.rungs)}", key="rungs")

    @property
    def ref(self) -> LadderRef:
        """What raysweep.models builds from: the registered family's name, or the ladder this file defines."""
        from raysweep.models import Ladder, Rung, TimmCfg

        if not self.timm:
            return self.family
        rungs = tuple(Rung(r.name, TimmCfg.of(r.model, r.kwargs)) for r in self.timm)
        return Ladder(self.family, rungs, "defined in the search-space file")

    def check_models(self, *, num_classes: int, in_chans: int, image_size: int) -> None:
        """For a ladder defined in the file: every rung builds and runs at this data shape, and the
        parameter counts measured from the built models rise along the ladder. Keys are full paths."""
        if not self.timm:
            return  # the registered ladders are checked by their own tests
        from raysweep.models import param_count
        from raysweep.models.timm_rungs import check_builds

        ref = self.ref
        shape = {"num_classes": num_classes, "in_chans": in_chans, "image_size": image_size}
        counts: list[int] = []
        for i, rung in enumerate(self.timm):
            try:
                check_builds(ref.rung(rung.name).cfg, **shape)  # type: ignore[union-attr, arg-type]
            except SpecError as err:
                raise err.located(key_prefix=f"ladder.timm[{i}]") from None
            counts.append(param_count(ref, rung.name, **shape))
            if i and counts[i] <= counts[i - 1]:
                sizes = ", ".join(f"{r.name} {n:,}" for r, n in zip(self.timm, counts, strict=False))
                raise SpecError(f"expected rungs ascending in measured parameter count, got {sizes} "
                                f"(at {image_size}x{image_size}, {in_chans} channels, {num_classes} classes)",
                                key=f"ladder.timm[{i}]")


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
        # in log space: high / base overflows to inf for high near 1e308, low / base underflows to 0
        step = math.log(self.factor)
        k_lo = math.ceil((math.log(self.low) - math.log(self.base)) / step - 1e-9)
        k_hi = math.floor((math.log(self.high) - math.log(self.base)) / step + 1e-9)
        if k_hi - k_lo + 1 > MAX_LR_POINTS:  # validate() reports it; never build a huge grid
            k_hi = k_lo + MAX_LR_POINTS
        # 6 significant figures keep grid points readable and distinct for any factor > 1.0001
        points = (float(f"{self._point(k):.6g}") for k in range(k_lo, k_hi + 1))
        return tuple(p for p in points if 0 < p < math.inf)  # the tolerance must not step past 1e308 or 0

    def _point(self, k: int) -> float:
        try:
            return self.base * self.factor**k  # not exp(log ...): the same floats as grids already recorded
        except OverflowError:  # factor**k past 1.8e308
            return math.inf


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
    dataset: DatasetName = "mnist5k"  # a key of raysweep.data.DATASETS
    path: str | None = None  # root folder for `image_folder` (one sub-folder per class)
    val_fraction: float = 0.1  # held out from training with `split_seed`; never trained on
    split_seed: int = 0  # fixes the train/validation split independently of the trial seed
    image_size: int = 32  # 28x28 digits are padded to 32 so four stride-2 stages divide evenly
    train_subset: int | None = None  # use only the first N shuffled training examples (benchmarks)
    assume: DataAssumption | None = None  # for --dry-run only, where `path` is not readable here
    url: str | None = None  # `shards`: the folder `raysweep data convert` wrote (a path, file://, gs://, s3://)
    loader_workers: int = 2  # `shards`: decoding processes per trial, off the step (0: in the step's process)
    shard_window: int = 0  # `shards`: 0 = one permutation of all examples (as in memory); k = within k shards
    skip_corrupt_shards: bool = False  # `shards`: drop, count and log a shard failing its SHA-256, not fail

    def validate(self) -> None:
        if self.dataset == "image_folder" and not self.path:
            raise SpecError("expected a folder path for dataset image_folder, got nothing", key="path")
        if (self.dataset == "shards") != bool(self.url):
            raise SpecError(f"expected a url exactly with dataset shards, got dataset {self.dataset} and "
                            f"url {self.url!r}", key="url")
        if self.loader_workers < 0 or self.shard_window < 0:
            raise SpecError(f"expected loader_workers >= 0 and shard_window >= 0, got {self.loader_workers} "
                            f"and {self.shard_window}", key="loader_workers" if self.loader_workers < 0 else "shard_window")
        if not 0 < self.val_fraction < 1:
            raise SpecError(f"expected a fraction in (0, 1), got {self.val_fraction!r}", key="val_fraction")
        _positive(self.image_size, "image_size")
        if self.image_size > MAX_IMAGE_SIZE:
            raise SpecError(f"expected at most {MAX_IMAGE_SIZE} pixels, got {self.image_size}", key="image_size")
        if self.train_subset is not None:
            _positive(self.train_subset, "train_subset")
        _seed(self.split_seed, "split_seed")


# Defaults that depend on the optimiser, one line each with its reason; `None` in OptimSpec means
# "the chosen optimiser's default" and is filled from here when the spec is built.
_SGD_DEFAULTS: dict[str, Any] = {
    "momentum": 0.9,  # NFNet recipe: SGD with Nesterov momentum 0.9
    "nesterov": True,
    "agc_clip": 0.01,  # AGC lambda for batch 1024-4096 in the NFNet paper; 0 turns AGC off
    "weight_decay": 1e-5,  # NFNet: 2e-5 on ImageNet, 1e-6 on JFT; never on gains and biases
    "warmup_fraction": 0.05,  # NFNet: 5 of 360 epochs; short budgets here need a few more steps
}
_ADAMW_DEFAULTS: dict[str, Any] = {
    "betas": (0.9, 0.999),  # ViT (Dosovitskiy et al.) and DeiT; beta2 0.999 averages the scale over ~1k steps
    "agc_clip": 0.0,  # off: Adam already normalises each parameter's step, and the ViT recipes clip nothing
    # DeiT's 0.05 (the ViT paper's 0.1 at batch 4096): decoupled decay is multiplied by the LR, which
    # is ~1000x smaller than SGD's, so the coefficient is ~1000x larger
    "weight_decay": 0.05,
    "warmup_fraction": 0.1,  # Adam's second-moment estimate is noisy over the first steps; ViTs diverge without warm-up
}


def _by_optimiser() -> Any:
    """The default of a field that depends on optim.name: a placeholder OptimSpec fills from the tables
    above, so the field's type stays a plain number for the code that reads it."""
    return None


MAX_ADAMW_LR = 0.1  # an AdamW step moves every weight by about the LR: above 0.1 no ViT weight survives a step


@dataclass(frozen=True)
class OptimSpec:
    # sgd: the NFNet recipe (SGD + Nesterov + AGC), the default and the NFNet ladders' optimiser;
    # adamw: decoupled weight decay (Loshchilov & Hutter 2019), what ViTs are trained with
    name: Literal["sgd", "adamw"] = "sgd"
    momentum: float | None = None  # sgd only (0.9); adamw has betas
    nesterov: bool | None = None  # sgd only (true)
    betas: tuple[float, ...] | None = None  # adamw only ((0.9, 0.999))
    agc_clip: float = _by_optimiser()  # sgd 0.01, adamw 0 (off); 0 turns AGC off with either
    agc_eps: float = 1e-3  # floor on the weight norm in AGC
    weight_decay: float = _by_optimiser()  # sgd 1e-5, adamw 0.05; never on gains, biases and norms
    label_smoothing: float = 0.1
    warmup_fraction: float = _by_optimiser()  # share of the steps spent in linear warm-up: sgd 0.05, adamw 0.1

    def __post_init__(self) -> None:
        defaults = _SGD_DEFAULTS if self.name == "sgd" else _ADAMW_DEFAULTS if self.name == "adamw" else {}
        for key, value in defaults.items():  # frozen: fill the chosen optimiser's defaults once, here
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)

    def validate(self) -> None:
        other = {"sgd": ("betas",), "adamw": ("momentum", "nesterov")}[self.name]
        for key in other:
            if getattr(self, key) is not None:
                owner = "adamw" if key == "betas" else "sgd"
                value = getattr(self, key)
                raise SpecError(f"expected no {key} with optim.name {self.name} (an {owner} setting), "
                                f"got {list(value) if isinstance(value, tuple) else value!r}", key=key)
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise SpecError(f"expected a number in [0, 1), got {self.momentum!r}", key="momentum")
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise SpecError(f"expected two numbers in [0, 1) (beta1, beta2), got {list(self.betas)}", key="betas")
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
    # An earlier study whose fitted LR trend gives every cell its first LR (instead of its lattice
    # predecessor): an MLflow experiment at this sweep's tracking URI, or a results table (*.csv)
    warm_start: str | None = None

    def validate(self) -> None:
        if self.warm_start is not None:
            if not self.warm_start.strip() or not self.warm_start.isprintable():
                raise SpecError(f"expected an MLflow experiment name or a results table (.csv), got "
                                f"{_show(self.warm_start)}", key="warm_start")
            if self.searcher not in PRIOR_SEARCHERS:
                raise SpecError(f"expected one of the prior searchers {list(PRIOR_SEARCHERS)} with a warm start, got "
                                f"searcher {self.searcher!r}, which does not start from a forecast", key="warm_start")
        if self.slowness < 0:
            raise SpecError(f"expected an integer >= 0, got {self.slowness!r}", key="slowness")
        if self.tie_tolerance < 0:
            raise SpecError(f"expected a number >= 0, got {self.tie_tolerance!r}", key="tie_tolerance")
        _positive(self.trials_per_cell, "trials_per_cell")
        if self.max_retries < 0:
            raise SpecError(f"expected an integer >= 0, got {self.max_retries!r}", key="max_retries")
        _seed(self.seed, "seed")


@dataclass(frozen=True)
class CheckpointSpec:
    # Epoch boundaries always checkpoint; these add checkpoints inside long epochs, so a pre-empted
    # trial loses at most this much work. Both 0 = epoch boundaries only.
    every_steps: int = 0  # also every N optimiser steps (0 = off)
    every_minutes: float = 10.0  # also once this many minutes of training have passed since the last (0 = off)

    def validate(self) -> None:
        if self.every_steps < 0:
            raise SpecError(f"expected an integer >= 0, got {self.every_steps!r}", key="every_steps")
        if self.every_minutes < 0:
            raise SpecError(f"expected a number >= 0, got {self.every_minutes!r}", key="every_minutes")


@dataclass(frozen=True)
class TrackingSpec:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str = "raysweep"
    # At the end of a sweep, wait this long for a store that is down to take the journal's backlog;
    # then exit 2 and leave it for `raysweep upload` (2 minutes rides out a server restart)
    flush_timeout_s: float = 120.0

    def validate(self) -> None:
        if not (isinstance(self.flush_timeout_s, (int, float)) and 0 <= self.flush_timeout_s < math.inf):
            raise SpecError(f"expected a finite number of seconds >= 0, got {self.flush_timeout_s!r}",
                            key="flush_timeout_s")
        if not self.experiment.strip() or len(self.experiment) > MAX_NAME_LEN or not self.experiment.isprintable():
            raise SpecError(f"expected a name of 1 to {MAX_NAME_LEN} printable characters, got {_show(self.experiment)}",
                            key="experiment")
        if self.uri is not None and (not self.uri.strip() or not self.uri.isprintable()):
            raise SpecError(f"expected a tracking URI such as http://host:5000 or sqlite:////abs/mlflow.db, "
                            f"got {_show(self.uri)}", key="uri")


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
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    seed: int = 0  # trial seed: init and data order
    description: str = ""

    def validate(self) -> None:
        _check_name(self.name, "name")
        _non_empty(self.epochs, "epochs")
        for i, e in enumerate(self.epochs):
            _positive(e, f"epochs[{i}]")
            if e > MAX_EPOCHS:
                raise SpecError(f"expected an epoch budget of at most {MAX_EPOCHS:g}, got {e:g}", key=f"epochs[{i}]")
        if list(self.epochs) != sorted(set(self.epochs)):
            raise SpecError(f"expected distinct epoch budgets in ascending order, got {list(self.epochs)}", key="epochs")
        _positive(self.batch_size, "batch_size")
        _positive(self.eval_batch_size, "eval_batch_size")
        if self.optim.name == "adamw" and self.lr.high > MAX_ADAMW_LR:
            raise SpecError(f"expected an LR grid for AdamW (around 1e-3, at most {MAX_ADAMW_LR}), got lr.high "
                            f"{self.lr.high:g}: set lr to e.g. {{base: 1.0e-3, low: 1.25e-4, high: 8.0e-3}}",
                            key="lr.high")
        self._check_ladder_builds()
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
        _seed(self.seed, "seed")

    def _check_ladder_builds(self) -> None:
        """A ladder written in the file must build at this image size; the dataset's classes are known
        here when it is a fixed one, its channels only once it is read (the CLI's preflight checks
        again at the real shape), so 3 channels stand in for them."""
        from raysweep.data import DATASETS

        classes = getattr(DATASETS[self.data.dataset], "num_classes", 10)
        self.ladder.check_models(num_classes=classes, in_chans=3, image_size=self.data.image_size)

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
        raise SpecError(f"expected valid YAML, got a syntax error{where}: {' '.join(problem.split())}",
                        file=file) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int-from-text limit)
        raise SpecError(f"expected valid YAML, got {exc}", file=file) from None
    except RecursionError:
        raise SpecError("expected a YAML file, got lists or mappings nested too deeply to read", file=file) from None
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping at the top level, got {type(raw).__name__}", file=file)
    try:
        return spec_from_dict(apply_overrides(raw, overrides, file=file), file=file)
    except RecursionError:  # copying or quoting a value nested thousands deep
        raise SpecError("expected a search space, got lists or mappings nested too deeply", file=file) from None


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
        except (yaml.YAMLError, ValueError, RecursionError):  # not YAML: the text itself, checked as a string
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
        raise SpecError(f"unknown key; expected one of {list(fields)}", key=_join(key, _key_name(unknown[0])))
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
    if origin is dict:  # free-form arguments (a timm model's kwargs): a mapping of plain YAML values
        if not isinstance(value, Mapping):
            raise SpecError(f"expected a mapping, got {_show(value)}", key=key)
        for k, v in value.items():
            if not isinstance(k, str):
                raise SpecError(f"expected string keys, got {_show(k)}", key=key)
            _check_plain(v, _join(key, k))
        return dict(value)
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
        try:
            number = float(value)
        except OverflowError:  # an integer past 1.8e308
            number = math.inf
        if not math.isfinite(number):
            raise SpecError(f"expected a finite number, got {_show(value)}", key=key)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"expected a string, got {_show(value)}", key=key)
        return value
    raise AssertionError(f"unsupported field type {tp!r} at {key}")  # an internal invariant


_SHOW_CHARS = 120  # a value quoted in an error is cut here: the message stays one readable line


def _check_plain(value: Any, key: str) -> None:
    """JSON-like values only, so that the config crosses processes as a plain dict unchanged."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got {_show(value)}", key=key)
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
        return
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        for k, v in value.items():
            _check_plain(v, _join(key, k))
        return
    raise SpecError(f"expected a number, string, boolean, list or mapping, got {_show(value)}", key=key)


def _check_name(value: str, key: str) -> None:
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value) \
            or len(value) > MAX_NAME_LEN or value.startswith("."):
        raise SpecError(f"expected a name of 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.' (not first), "
                        f"got {_show(value)}", key=key)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    try:
        text = repr(value)
    except ValueError:  # an integer too long for repr (Python caps int -> str at 4300 digits)
        text = f"an integer of more than {sys.get_int_max_str_digits()} digits"
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + "..."
    return f"{type(value).__name__} {text}"


def _key_name(key: Any) -> str:
    """A mapping key as it appears in a dotted path: plain names as they are, anything else quoted."""
    if isinstance(key, str) and key and key.isprintable() and not any(c in key for c in " .[]"):
        return key
    text = repr(key)
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _seed(value: int, key: str) -> None:
    if not 0 <= value < SEED_RANGE:
        raise SpecError(f"expected a seed in [0, 2**32), got {_show(value)}", key=key)


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise SpecError(f"expected a number > 0, got {value!r}", key=key)


def _non_empty(value: tuple[Any, ...], key: str) -> None:
    if not value:
        raise SpecError("expected a non-empty list, got []", key=key)
