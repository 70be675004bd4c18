#!/usr/bin/env bash
# Records the same two full-grid tables with AGC clip lambda = 0.16, the NFNet paper's guidance for
# small batches (lambda = 0.01 is for batches of 1024-4096; these sweeps use batch 64), and an LR
# grid of 0.025-1.6 around that regime's optimum. About 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RS=.venv/bin/raysweep
URI="sqlite:///$PWD/benchmarks/record/mlflow.db"
AGC=(--set optim.agc_clip=0.16 --set lr.base=0.4 --set lr.low=0.025 --set lr.high=1.6)
mkdir -p benchmarks/record
for seed in 0 1 2; do
  $RS run search_spaces/demo.yaml --quiet --tracking-uri "$URI" --results benchmarks/record/results \
    --set search.searcher=grid --set seed=$seed "${AGC[@]}" \
    --set tracking.experiment=bench-mnist5k-agc0.16 --set name=bench-mnist5k-agc-s$seed
done
$RS table --tracking-uri "$URI" --experiment bench-mnist5k-agc0.16 --out benchmarks/mnist5k_grid_agc0.16.csv
for seed in 0 1; do
  $RS run search_spaces/fashion_ladder.yaml --quiet --tracking-uri "$URI" --results benchmarks/record/results \
    --set search.searcher=grid --set seed=$seed "${AGC[@]}" \
    --set tracking.experiment=bench-fashion-agc0.16 --set name=bench-fashion-agc-s$seed
done
$RS table --tracking-uri "$URI" --experiment bench-fashion-agc0.16 --out benchmarks/fashion_grid_agc0.16.csv
