"""Analysis of finished sweeps, in pure numpy/scipy/matplotlib (no Ray, MLflow or Optuna).

May import: `raysweep.core` and `raysweep.results` (the row type and the CSV reader) only.

- `summary`, `plots`: per-cell summaries and LR curves of one sweep (printed and drawn by `raysweep run`).
- `runs`: the runs of a study (a results table or MLflow rows) and each cell at its best LR.
- `stats`: fit status, intervals, least squares, the bootstrap over seeds.
- `frontier`: the compute-efficient frontier, its power law, the allocation along it, edge warnings.
- `parametric`: L(N, D) = E + A/N^alpha + B/D^beta (summed Huber on log loss, multi-start L-BFGS).
- `lr_trend`: log lr* = c + p log N + q log epochs, and the cells that break monotonicity.
- `study`: all of the above for one study (`fit.json`); `plan`: the forecast for a new budget.
- `compare`: studies at matched compute; `figures`, `report`: the PNGs and `report.md`.
- `testing`: planted studies drawn from a known law, for tests.
- `finetune`, `finetune_figure`: a fine-tuning sweep's Figure 1 (`top1_vs_compute.png`), its power law
  of downstream error against pre-training compute, the finding-4 table and `finetune_report.md`.
"""

from raysweep.analysis.finetune import FinetuneAnalysis, write_finetune_analysis

__all__ = ["FinetuneAnalysis", "write_finetune_analysis"]
