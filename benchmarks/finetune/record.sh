#!/usr/bin/env bash
# Records issue 14's experiment: pre-train the CPU NFNet ladder on all of Fashion-MNIST (kept
# checkpoints), then fine-tune the chosen checkpoints on scikit-learn's 8x8 digits (other classes,
# another resolution, installs offline), 3 seeds, with and without repeated augmentation, plus the
# from-scratch baseline; then `raysweep analyze` on the fine-tuning sweep (Figure 1, finding 4).
# Usage: benchmarks/finetune/record.sh    (resumable: run it again after an interruption)
# The MLflow store and Ray results stay in benchmarks/record/finetune/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=.venv/bin/raysweep
REC=benchmarks/record/finetune
URI="sqlite:///$PWD/$REC/mlflow.db"
SPACE=search_spaces/finetune/fashion_to_digits.yaml
mkdir -p "$REC"
stage() {  # name, command...: run once; a second run of the script resumes an interrupted stage
  local name=$1; shift
  [ -e "$REC/done-$name" ] && { echo "$name: already recorded"; return; }
  local again=()
  [ -e "$REC/started-$name" ] && again=(--resume)
  touch "$REC/started-$name"
  "$@" "${again[@]}"
  touch "$REC/done-$name"
}
stage pretrain $RS run "$SPACE" --quiet --tracking-uri "$URI" --results "$REC/results"
# the fine-tuning searcher is grid, which keeps no study: an interrupted fine-tuning stage starts over
# (delete the experiment's runs first: mlflow's `runs delete`, or a new tracking.experiment)
rm -f "$REC/started-finetune"
stage finetune $RS finetune "$SPACE" --quiet --tracking-uri "$URI" --results "$REC/results"
$RS table --tracking-uri "$URI" --experiment ft-fashion-pretrain --out benchmarks/finetune/pretrain.csv
$RS analyze --tracking-uri "$URI" --experiment ft-fashion-digits --out benchmarks/finetune/analysis
