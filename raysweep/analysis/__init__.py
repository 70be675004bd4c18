"""Analysis of finished sweeps: per-cell summaries (and, later, frontier, fits and figures). No Ray."""
