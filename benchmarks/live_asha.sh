#!/usr/bin/env bash
# Issue 16: one live run of Tune's ASHA, through raysweep's Tune machinery (search.scheduler: asha over
# the grid searcher, one ASHAScheduler per (model, budget) cell), against the monotone searcher with
# search.early_stop (margin auto), on the demo's lattice (search_spaces/demo.yaml, MNIST-5k: 3 rungs x
# 4 budgets x the 7-point LR grid 0.025-1.6) with the recipe of benchmarks/record_curves.sh (AGC 0.16,
# eval_points=8). Each sweep goes to its own MLflow experiment (live-asha, live-monotone-es) in
# benchmarks/live/mlflow.db; then benchmarks/live_compare.py prints per cell the best LR, its loss
# and the FLOPs spent in full-trial equivalents side by side, and the totals
# (benchmarks/live/live_asha.txt).
#
# ASHA's reduction factor: RF (default 2, the value for a 7-point grid: rungs at 1, 2 and 4 of the 8
# evaluation points; Tune's own default is 4). Trim the lattice for a check with LIVE_SET, e.g.
#   LIVE_SET="--set ladder.rungs=[nfnet_t0] --set epochs=[0.5]" benchmarks/live_asha.sh
# Each sweep holds the shared Ray lock when LOCK names one (LOCK=/tmp/raysweep-ray.lock). On 2 cores
# the grid sweep runs up to 84 trials (fewer whole ones) and the monotone one about 25: about 2 minutes
# in all on an idle machine (70 s and 37 s on 2026-12-04), much longer under load.
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${RS:-.venv/bin/raysweep}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/live}
URI=${URI:-sqlite:///$(realpath -m "$OUT")/mlflow.db}
RF=${RF:-2}
STAMP=$(date -u +%Y%m%dT%H%M%S)
read -r -a EXTRA <<< "${LIVE_SET:-}"
RECIPE=(--set optim.agc_clip=0.16 --set lr.base=0.4 --set lr.low=0.025 --set lr.high=1.6 --set eval_points=8)
ASHA=(--set search.searcher=grid --set search.scheduler.name=asha --set search.scheduler.reduction_factor="$RF"
      --set tracking.experiment=live-asha --set name="live-asha-$STAMP")
MONO=(--set search.searcher=monotone --set search.early_stop.margin=auto
      --set tracking.experiment=live-monotone-es --set name="live-monotone-es-$STAMP")
LOCKED=()
if [ -n "${LOCK:-}" ]; then LOCKED=(flock "$LOCK"); fi
mkdir -p "$OUT"

sweep() {  # sweep FLAGS...: one sweep of the demo's lattice with the recipe
  echo "== $RS run search_spaces/demo.yaml ${RECIPE[*]} ${EXTRA[*]} $*"
  local t0=$SECONDS
  "${LOCKED[@]}" "$RS" run search_spaces/demo.yaml --quiet --tracking-uri "$URI" --results "$OUT/results" \
    "${RECIPE[@]}" "${EXTRA[@]}" "$@"
  echo "== $((SECONDS - t0)) s"
}
sweep "${ASHA[@]}"
sweep "${MONO[@]}"
"$PY" benchmarks/live_compare.py --tracking-uri "$URI" --experiment live-asha --experiment live-monotone-es \
  | tee "$OUT/live_asha.txt"
