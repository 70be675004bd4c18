#!/usr/bin/env bash
# Issue 17, the part of the extended study that fits a session: only the cells that the first NFNet
# study's edge warnings name (benchmarks/study/analysis/nfnet/report.md):
#   nfnet_t0@16 sits on the frontier at the largest budget -> nfnet_t0 at 32 epochs;
#   nfnet_t3@4 and @8 (the frontier's top) use the largest rung -> nfnet_t4 at 4 and 8 epochs.
# Each a sweep of its own (a lattice is a full product of rungs and budgets), warm-started from the
# first study's table (benchmarks/study/nfnet.csv), monotone with search.early_stop (margin auto),
# checkpoints kept, one seed as in the first study. About 13 minutes on 2 cores (2026-12-04).
# Writes benchmarks/study/nfnet_edges.csv (the first study's trials and the new ones) and its
# analysis in benchmarks/study/analysis/nfnet_edges/ (is the edge warning silent now?). The MLflow
# store and Ray results stay in benchmarks/record/study_edges/ (not committed). Resumable like
# record_extended.sh: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=${RS:-.venv/bin/raysweep}
PY=${PY:-.venv/bin/python}
REC=benchmarks/record/study_edges
URI="sqlite:///$PWD/$REC/mlflow.db"
mkdir -p "$REC"
. benchmarks/study/sweep.sh
edge() {  # name, extra args: one sweep of fashion_nfnet.yaml's recipe, warm-started from the first study
  local name=$1; shift
  sweep "$name" search_spaces/study/fashion_nfnet.yaml --warm-start benchmarks/study/nfnet.csv \
    --set tracking.experiment=study-fashion-nfnet-edges "$@"
}
edge study_nfnet_t4_edge --set 'ladder.rungs=[nfnet_t4]' --set 'epochs=[4,8]'
edge study_nfnet_t0_edge --set 'ladder.rungs=[nfnet_t0]' --set 'epochs=[32]'
$RS table --tracking-uri "$URI" --experiment study-fashion-nfnet-edges --out "$REC/edges.csv"
$PY benchmarks/study/merge_tables.py benchmarks/study/nfnet.csv "$REC/edges.csv" --out benchmarks/study/nfnet_edges.csv
$RS analyze --table benchmarks/study/nfnet_edges.csv --out benchmarks/study/analysis/nfnet_edges
