#!/usr/bin/env bash
# Records issue 8's study: the CPU NFNet ladder (SGD) and the CPU ViT ladder (AdamW) on all of
# Fashion-MNIST, monotone LR search, then analyses each sweep and the two together.
# Usage: benchmarks/study/record.sh    (about 105 minutes on 2 cores; resumable: run it again)
# Writes benchmarks/study/{nfnet,vit}.csv and benchmarks/study/analysis/; the MLflow store and the
# Ray results stay in benchmarks/record/study/ (not committed).
# VIT_RUNGS / VIT_EPOCHS trim the ViT lattice: its FLOPs per example are ~25x the NFNets'.
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=.venv/bin/raysweep
REC=benchmarks/record/study
URI="sqlite:///$PWD/$REC/mlflow.db"
VIT_RUNGS=${VIT_RUNGS-[vit_t0,vit_t1,vit_t2]}
VIT_EPOCHS=${VIT_EPOCHS-[0.25,0.5,1,2,4]}
mkdir -p "$REC"
sweep() {  # name, space, extra --set args...
  local name=$1 space=$2; shift 2
  [ -e "$REC/done-$name" ] && { echo "$name: already recorded"; return; }
  local again=()  # a second run of this script continues an interrupted sweep
  [ -e "$REC/started-$name" ] && again=(--resume)
  touch "$REC/started-$name"
  $RS run "$space" --quiet --tracking-uri "$URI" --results "$REC/results" "${again[@]}" "$@"
  touch "$REC/done-$name"
}
sweep study_fashion_nfnet search_spaces/study/fashion_nfnet.yaml
sweep study_fashion_vit search_spaces/study/fashion_vit.yaml \
  --set "ladder.rungs=$VIT_RUNGS" --set "epochs=$VIT_EPOCHS"
$RS table --tracking-uri "$URI" --experiment study-fashion-nfnet --out benchmarks/study/nfnet.csv
$RS table --tracking-uri "$URI" --experiment study-fashion-vit --out benchmarks/study/vit.csv
for s in nfnet vit; do
  $RS analyze --tracking-uri "$URI" --experiment "study-fashion-$s" --out "benchmarks/study/analysis/$s"
done
$RS analyze --tracking-uri "$URI" --experiment study-fashion-nfnet --experiment study-fashion-vit \
  --out benchmarks/study/analysis/compare
# the forecast check on the real study: fit the lower two thirds of compute, predict the top third
PYTHONPATH=. .venv/bin/python benchmarks/validate_forecast.py benchmarks/study/nfnet.csv benchmarks/study/vit.csv \
  --json benchmarks/study/forecast_validation.json > benchmarks/study/forecast_validation.txt
