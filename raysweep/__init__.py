"""raysweep: compute-scaling studies of image models on Ray.

The packages, from the bottom up (each imports only those below it):
- `core`: the shared words (errors, trial records, the lattice, redaction, the TPU-v4 calibration);
- `config`: a search space as frozen, validated plain data;
- `models`, `data`, `devices`: what a trial builds, reads and runs on;
- `tracking` (MLflow writes), `results` (finished trials as rows), `analysis` (fits and figures);
- `search` (which LR next), `train` (the worker side), `sweep` (the Ray edge), `bench` (replays);
- `cli`: the `raysweep` command, one module per command, and the preflight.
"""
