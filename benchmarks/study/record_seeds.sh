#!/usr/bin/env bash
# Records seed replicates at the top of the extended NFNet study's frontier (issue 17): the study is
# one seed a cell, and its top cells lie within 0.6% of each other (nfnet_t3@8 0.3296,
# nfnet_t5@16 0.3290, nfnet_t5@8 0.3310), so which rung is "the measured optimum" and how far a
# forecast may miss it are questions of seed noise. Each cell is run again at the LR the study
# settled on (0.1 for all four) with seeds 1 and 2 (the study ran seed 0): the grid searcher on a
# one-point LR grid, one sweep per seed, the two seeds side by side (one core each).
#   cells: nfnet_t3@8 (the top of the fitted two thirds), nfnet_t5@4, @8, @16 (the top third), then
#   nfnet_t6@4 and @8 (seeds_t6_s<N>.csv) once the t6 piece of record_extended.sh put t6@8 beside t5@8.
# About 1 h on 2 cores. A finished seed leaves its table at benchmarks/study/extended/seeds_s<N>.csv
# (committed) and is skipped on the next run; an interrupted one starts again (grid is not resumable).
# Then: benchmarks/study/nfnet_extended_seeds.csv (the study with the new seeds), its analysis
# (benchmarks/study/analysis/nfnet_extended_seeds/), the forecast check
# on it (forecast_seeds_*.txt) and benchmarks/study/seed_noise.py's spread, rivals and forecast
# misses in units of the seed noise (seed_noise.txt). TABLES=1 records nothing and only does this.
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=${RS:-.venv/bin/raysweep}
PY=${PY:-.venv/bin/python}
REC=${REC:-benchmarks/record/study_seeds}
PARTS=benchmarks/study/extended
mkdir -p "$REC" "$PARTS"
seed_piece() {  # seed_piece TAG N PART...: the cells of each PART (rung:[epochs]) with seed N, one trial at a time
  local tag=$1 s=$2; shift 2
  local out="$PARTS/seeds${tag:+_$tag}_s$s.csv" exp="study-fashion-nfnet-seeds${tag:+-$tag}-s$s"
  local uri="sqlite:///$PWD/$REC/s$s/mlflow.db"  # a store each: two drivers at once
  [ -e "$out" ] && { echo "seed $s${tag:+ ($tag)}: recorded ($out)"; return 0; }
  mkdir -p "$REC/s$s"
  for part in "$@"; do
    $RS run search_spaces/study/fashion_nfnet.yaml --quiet --tracking-uri "$uri" --results "$REC/s$s/results" \
      --set "name=study_fashion_nfnet_seeds_${part%%:*}_s$s" --set "tracking.experiment=$exp" \
      --set search.searcher=grid --set "ladder.rungs=[${part%%:*}]" --set "epochs=${part#*:}" \
      --set lr.base=0.1 --set lr.low=0.1 --set lr.high=0.1 --set "seed=$s" --set resources.concurrent_trials=1
  done
  $RS table --tracking-uri "$uri" --experiment "$exp" --out "$out"
}
one_seed() {  # one_seed N: every cell with seed N
  seed_piece "" "$1" "nfnet_t3:[8]" "nfnet_t5:[4,8,16]"
  # added once nfnet_t6 was recorded: its 8-epoch cell came within the noise of t5@8
  seed_piece t6 "$1" "nfnet_t6:[4,8]"
}
if [ -n "${SEED:-}" ]; then one_seed "$SEED"; exit 0; fi  # SEED=N: one seed only (what each half below runs)
if [ -z "${TABLES:-}" ]; then
  SEED=1 bash "$0" & one=$!
  SEED=2 bash "$0" & two=$!
  wait $one; wait $two
fi
seeds=("$PARTS"/seeds_*s[0-9]*.csv)
$PY benchmarks/study/merge_tables.py benchmarks/study/nfnet_extended.csv "${seeds[@]}" \
  --out benchmarks/study/nfnet_extended_seeds.csv
$RS analyze --table benchmarks/study/nfnet_extended_seeds.csv --out benchmarks/study/analysis/nfnet_extended_seeds
for law in chinchilla overfit auto; do  # the forecast check again, with the top cells' seed means
  PYTHONPATH=. $PY benchmarks/validate_forecast.py benchmarks/study/nfnet_extended_seeds.csv --law "$law" \
    --json "benchmarks/study/forecast_seeds_$law.json" > "benchmarks/study/forecast_seeds_$law.txt"
done
PYTHONPATH=. $PY benchmarks/study/seed_noise.py benchmarks/study/nfnet_extended_seeds.csv \
  --forecast benchmarks/study/forecast_seeds_chinchilla.json --forecast benchmarks/study/forecast_seeds_overfit.json \
  --forecast benchmarks/study/forecast_seeds_auto.json --json benchmarks/study/seed_noise.json \
  > benchmarks/study/seed_noise.txt
cat benchmarks/study/seed_noise.txt
