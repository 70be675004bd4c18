"""The sections of a search space that need nothing but themselves: the LR grid, the data, the
optimiser, the searcher, checkpoints, the training step and tracking. Every default is here, one line each with its reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from raysweep.config._checks import MAX_IMAGE_SIZE, MAX_LR_POINTS, MAX_NAME_LEN, _positive, _seed, _show
from raysweep.core.errors import SpecError

SearcherName = Literal["grid", "monotone", "bracket", "verify", "trend", "tpe", "random"]
PRIOR_SEARCHERS: tuple[SearcherName, ...] = ("monotone", "bracket", "verify", "trend")  # the paper's prior
# The dataset names raysweep.data registers (a test checks that the two agree). Named here, not
# imported from raysweep.data, so that the config needs nothing from the data layer, which imports it.
DatasetName = Literal["mnist5k", "fashion_mnist", "digits", "image_folder", "shards"]


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
    # `shards`: decoding processes per trial, off the step (0: in the step's process); 'auto': 0 for
    # decoded pixels (nothing to decode: workers only take the step's CPU), 2 for encoded images
    loader_workers: Literal["auto"] | int = "auto"
    # `shards`: 0 = one permutation of all examples (as in memory); k = within windows of k shards;
    # 'auto': 0 when the split fits a process's shard cache, else the most shards that fit it
    shard_window: Literal["auto"] | int = "auto"
    shard_cache_mb: int | None = None  # `shards`: decoded shards one process keeps, in MiB (None: 1024)
    skip_corrupt_shards: bool = False  # `shards`: drop, count and log a shard failing its SHA-256, not fail

    def validate(self) -> None:
        if self.dataset == "image_folder" and not self.path:
            raise SpecError("expected a folder path for dataset image_folder, got nothing", key="path")
        if (self.dataset == "shards") != bool(self.url):
            raise SpecError(f"expected a url exactly with dataset shards, got dataset {self.dataset} and "
                            f"url {self.url!r}", key="url")
        if self.loader_workers != "auto" and (isinstance(self.loader_workers, bool)
                                              or not isinstance(self.loader_workers, int) or self.loader_workers < 0):
            raise SpecError(f"expected 'auto' or an integer >= 0, got {_show(self.loader_workers)}", key="loader_workers")
        if self.shard_window != "auto" and (isinstance(self.shard_window, bool)
                                            or not isinstance(self.shard_window, int) or self.shard_window < 0):
            raise SpecError(f"expected 'auto' or an integer >= 0, got {_show(self.shard_window)}", key="shard_window")
        if self.shard_cache_mb is not None:
            _positive(self.shard_cache_mb, "shard_cache_mb")
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
class EarlyStopSpec:
    """search.early_stop: stop a trial at an evaluation point where its validation loss is worse than
    its cell's incumbent at the same step by more than `margin` (relative); the cell's first trial
    never stops (rules: raysweep.search.early_stop)."""

    # 'auto': 0.05, one sigma of the matched-step seed noise early in a budget (benchmarks/*_grid_curves.csv)
    margin: Literal["auto"] | float = "auto"

    def validate(self) -> None:
        if self.margin != "auto" and not (isinstance(self.margin, float) and self.margin >= 0):
            raise SpecError(f"expected 'auto' or a number >= 0, got {_show(self.margin)}", key="margin")


SchedulerName = Literal["asha", "hyperband"]
SCHEDULERS: tuple[SchedulerName, ...] = ("asha", "hyperband")
# Tune's own defaults (ASHAScheduler: reduction_factor 4, grace_period 1; HyperBandScheduler: 3)
TUNE_REDUCTION_FACTOR: dict[str, float] = {"asha": 4.0, "hyperband": 3.0}


@dataclass(frozen=True)
class SchedulerSpec:
    """search.scheduler: Ray Tune's own ASHAScheduler stops trials of a cell on rungs of its budget,
    one scheduler per (model, budget) cell (raysweep.sweep.cell_scheduler). The time attribute is the
    evaluation point (1..eval_points), so a trial's budget is `eval_points` long in Tune's units."""

    name: SchedulerName = "asha"
    # Tune's default (asha 4, hyperband 3) when None; 2 suits a 7-point LR grid: rungs at 1, 2, 4 of
    # 8 evaluation points keep 1/2 of the trials each time (with 4, a 7-trial cell has one rung that
    # keeps the top quarter, so nearly half of its trials run whole)
    reduction_factor: float | None = None
    grace_period: int = 1  # asha: the first rung, in evaluation points (Tune's default 1)

    def rf(self) -> float:
        return self.reduction_factor if self.reduction_factor is not None else TUNE_REDUCTION_FACTOR[self.name]

    def validate(self) -> None:
        if self.name == "hyperband":
            # Tune's synchronous HyperBandScheduler PAUSEs a trial at each milestone until its bracket
            # fills; with fewer trials in flight than a bracket holds (raysweep caps them at
            # resources.concurrent_trials) the paused trials are never resumed and the sweep hangs
            raise SpecError("expected asha: hyperband (Tune's synchronous HyperBandScheduler) pauses trials until "
                            "a whole bracket is in flight, which concurrent_trials cannot hold, so it is not run live; "
                            "`raysweep bench searcher --peers hyperband` replays it", key="name")
        if self.reduction_factor is not None and not self.reduction_factor > 1:
            raise SpecError(f"expected a number > 1, got {self.reduction_factor!r}", key="reduction_factor")
        if self.grace_period < 1:
            raise SpecError(f"expected an integer >= 1 (evaluation points), got {self.grace_period!r}",
                            key="grace_period")


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
    # Prior searchers: stop a trial early once it is clearly worse than its cell's incumbent; None: off
    early_stop: EarlyStopSpec | None = None
    # Ray Tune's ASHAScheduler over each cell's LR grid (`asha`, or a mapping {name, reduction_factor,
    # grace_period}); grid searcher only; None: off
    scheduler: SchedulerSpec | SchedulerName | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scheduler, str) and self.scheduler in SCHEDULERS:  # `scheduler: asha`: the defaults
            object.__setattr__(self, "scheduler", SchedulerSpec(name=self.scheduler))

    def scheduler_spec(self) -> SchedulerSpec | None:
        return self.scheduler if isinstance(self.scheduler, SchedulerSpec) else None

    def validate(self) -> None:
        if isinstance(self.scheduler, SchedulerSpec):
            try:
                self.scheduler.validate()
            except SpecError as err:
                raise err.located(key_prefix="scheduler") from None
        if self.scheduler is not None and self.searcher != "grid":
            raise SpecError(f"expected searcher grid with a scheduler, got searcher {self.searcher!r}: a scheduler "
                            "stops trials of a cell against each other, and only grid runs a cell's whole LR grid "
                            "(the prior searchers' rule needs whole trials: use search.early_stop with them)",
                            key="scheduler")
        if self.early_stop is not None and self.searcher not in PRIOR_SEARCHERS:
            raise SpecError(f"expected one of the prior searchers {list(PRIOR_SEARCHERS)} with early stopping, got "
                            f"searcher {self.searcher!r}", key="early_stop")
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


Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainSpec:
    """How each training step runs. Both off by default: measured on the CPU NFNet rungs
    (benchmarks/step_speed.txt), neither shortens the demo's end-to-end time for sure, since a
    trial of the demo is short and pays the compile once per trial process."""

    # torch.compile the training model (inductor) on cpu and cuda; the compile time is counted in
    # time/compile_s. On XLA a no-op: XLA compiles the step's graph anyway. Evaluation runs eager.
    compile: bool = False
    # fp32: plain. bf16: the forward pass and the loss under torch.autocast in bfloat16 where the device
    # supports it (cpu; cuda with bf16), weights, gradients and the optimiser state stay fp32; elsewhere
    # (XLA, an older GPU) it runs as fp32.
    precision: Precision = "fp32"

    def validate(self) -> None:
        if not isinstance(self.compile, bool):
            raise SpecError(f"expected true or false, got {_show(self.compile)}", key="compile")
        if self.precision not in PRECISIONS:
            raise SpecError(f"expected one of {list(PRECISIONS)}, got {_show(self.precision)}", key="precision")


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
