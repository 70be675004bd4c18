"""What a sweep costs before it runs, in the paper's unit: TPU-v4 core-hours.

Smith et al. (2023) report each run's cost in TPU-v4 core-hours (0.4k for F0 at 0.25 epochs to
110k for F7+ at 8 epochs) without stating a utilisation. A TPU v4 chip peaks at 275 TFLOP/s in
bf16 and holds 2 TensorCores, so a core peaks at 137.5 TFLOP/s; at 36% of that, training FLOPs
(forward + backward, counted from the model) reproduce both ends of the paper's axis, which is
why 0.36 is the default here (see ../shared/PAPER.md, "Compute calibration", and
tests/unit/test_cost.py). Pure arithmetic: no torch, Ray, MLflow or Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    name: str
    peak_flops: float  # per chip, bf16 dense
    cores: int  # TensorCores per chip: the "core" of core-hours

    @property
    def peak_flops_per_core(self) -> float:
        return self.peak_flops / self.cores


TPU_V4 = Chip("TPU v4", peak_flops=275e12, cores=2)  # Google's TPU v4 spec: 275 TFLOP/s bf16, 2 TensorCores
UTILISATION = 0.36  # of peak; calibrated on the paper's two ends (F0@0.25 ~0.4k, F7+@8 ~110k core-hours)


def core_hours(flops: float, chip: Chip = TPU_V4, utilisation: float = UTILISATION) -> float:
    """Core-hours that `flops` of training take on `chip` at `utilisation` of its peak."""
    if not 0 < utilisation <= 1:
        raise ValueError(f"`0 < utilisation <= 1` must hold, but got utilisation={utilisation}")
    return flops / (chip.peak_flops_per_core * utilisation) / 3600.0


def assumptions(chip: Chip = TPU_V4, utilisation: float = UTILISATION) -> str:
    """The one line that says what the core-hour figures assume."""
    return (f"{chip.name} peak {chip.peak_flops / 1e12:g} TFLOP/s bf16 per chip, {chip.cores} cores per chip "
            f"({chip.peak_flops_per_core / 1e12:g} TFLOP/s per core), at {utilisation:.0%} utilisation")


def format_hours(hours: float) -> str:
    """1234.5 -> '1.23k', 0.0123 -> '0.0123': core-hours span nine orders of magnitude."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if hours >= limit:
            return f"{hours / limit:.3g}{suffix}"
    return f"{hours:.3g}"
