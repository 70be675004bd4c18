"""Finished trials as rows: read back from MLflow (`mlflow_rows`) or from a results table CSV
(`csv_rows`, one number per cell through `cells`), and chosen as one study (`source`).

May import: `raysweep.core`, `raysweep.tracking` (to read MLflow) and `raysweep.analysis`'s row
types; no Ray or Optuna.
"""
