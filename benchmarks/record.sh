#!/usr/bin/env bash
# Records the full-grid results tables with the paper's AGC clip lambda = 0.01 at batch 64 (where the
# optimal LR does not fall with budget; see benchmarks/README.md) and an LR grid of 0.1-6.4.
# Usage: benchmarks/record.sh   (about 45 minutes on 2 cores; writes benchmarks/*_grid.csv)
set -euo pipefail
cd "$(dirname "$0")/.."
RS=.venv/bin/raysweep
URI="sqlite:///$PWD/benchmarks/record/mlflow.db"
mkdir -p benchmarks/record
for seed in 0 1 2; do
  $RS run search_spaces/demo.yaml --quiet --tracking-uri "$URI" --results benchmarks/record/results \
    --set search.searcher=grid --set seed=$seed --set lr.base=0.8 --set lr.low=0.1 --set lr.high=6.4 --set optim.agc_clip=0.01 \
    --set tracking.experiment=bench-mnist5k --set name=bench-mnist5k-s$seed
done
$RS table --tracking-uri "$URI" --experiment bench-mnist5k --out benchmarks/mnist5k_grid.csv
for seed in 0 1; do
  $RS run search_spaces/fashion_ladder.yaml --quiet --tracking-uri "$URI" --results benchmarks/record/results \
    --set search.searcher=grid --set seed=$seed \
    --set lr.base=0.8 --set lr.low=0.1 --set lr.high=6.4 --set optim.agc_clip=0.01 \
    --set tracking.experiment=bench-fashion --set name=bench-fashion-s$seed
done
$RS table --tracking-uri "$URI" --experiment bench-fashion --out benchmarks/fashion_grid.csv
