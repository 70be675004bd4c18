#!/usr/bin/env bash
# Records the tables with validation curves that issue 16's peers are replayed on (ASHA, HyperBand,
# Optuna's pruners, against raysweep's searchers, counted in FLOPs): MNIST-5k (search_spaces/demo.yaml)
# and the Fashion-MNIST 10k ladder (search_spaces/fashion_ladder.yaml), the batch-64 recipe with AGC
# lambda = 0.16 and the LR grid 0.025-1.6 of record_agc.sh, every cell of the full grid, each trial
# evaluated at 8 evenly spaced points of its budget (eval_points=8) besides its epoch boundaries, so
# a quarter-epoch budget is seen 8 times too. `raysweep table` then writes each trial's curve
# (the `curve` column: frac:loss;...).
#
# Resumable: a seed whose sweep finished leaves benchmarks/record/curves/<sweep name>.done, and a
# rerun skips it. A seed cut off part-way (Ctrl-C, a killed machine) runs again from the start under
# a new sweep name (the grid searcher does not resume); the tables export only the sweeps marked
# done, so the cut-off one's trials are left out.
#
# Seeds default to 0-9 for both (at least 5 are needed for the seed-noise verdicts). On 2 cores,
# roughly 2-3 minutes a seed for MNIST-5k and 8-10 for Fashion-MNIST (the extra evaluations add a
# little): about 2 hours in all. Fewer seeds, or one table:
#   MNIST_SEEDS="0 1 2 3 4" FASHION_SEEDS="" benchmarks/record_curves.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${RS:-.venv/bin/raysweep}
URI="sqlite:///$PWD/benchmarks/record/mlflow.db"
DONE=benchmarks/record/curves
RECIPE=(--set optim.agc_clip=0.16 --set lr.base=0.4 --set lr.low=0.025 --set lr.high=1.6
        --set eval_points=8 --set search.searcher=grid)
MNIST_SEEDS=${MNIST_SEEDS-0 1 2 3 4 5 6 7 8 9}
FASHION_SEEDS=${FASHION_SEEDS-0 1 2 3 4 5 6 7 8 9}
mkdir -p "$DONE"

record() {  # record SPACE EXPERIMENT PREFIX OUT SEEDS...
  local space=$1 experiment=$2 prefix=$3 out=$4
  shift 4
  local seed name sweeps=()
  for seed in "$@"; do
    if ! ls "$DONE/$prefix-s$seed".*.done >/dev/null 2>&1; then
      name="$prefix-s$seed.$(date -u +%Y%m%dT%H%M%S)"  # a fresh name per attempt
      $RS run "$space" --quiet --tracking-uri "$URI" --results benchmarks/record/results \
        "${RECIPE[@]}" --set seed="$seed" --set tracking.experiment="$experiment" --set name="$name"
      touch "$DONE/$name.done"
    fi
  done
  for marker in "$DONE/$prefix"-s*.done; do
    [ -e "$marker" ] || continue
    sweeps+=(--sweep "$(basename "$marker" .done)")
  done
  if [ ${#sweeps[@]} -gt 0 ]; then
    $RS table --tracking-uri "$URI" --experiment "$experiment" "${sweeps[@]}" --out "$out"
  fi
}

record search_spaces/demo.yaml bench-mnist5k-curves curves-mnist5k benchmarks/mnist5k_grid_curves.csv $MNIST_SEEDS
record search_spaces/fashion_ladder.yaml bench-fashion-curves curves-fashion benchmarks/fashion_grid_curves.csv \
  $FASHION_SEEDS
# the replay, the peers and the regret-against-FLOPs figure on each table
# (the warm variants warm-start from the other dataset's 10-seed grid; PriorBand runs in NePS's own
# environment, built here)
make neps-env
for t in mnist5k fashion; do
  [ -e "benchmarks/${t}_grid_curves.csv" ] || continue
  other=fashion; [ $t = fashion ] && other=mnist5k
  $RS bench searcher --table "benchmarks/${t}_grid_curves.csv" --warm-start "benchmarks/${other}_grid_agc0.16.csv" \
    --json "benchmarks/${t}_curves_bench.json" --figure "benchmarks/${t}_curves_pareto.png" \
    | tee "benchmarks/${t}_curves_bench.txt"
done
