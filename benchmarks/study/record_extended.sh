#!/usr/bin/env bash
# Records issue 17's extended study: the lattice of benchmarks/study/record.sh pushed past its
# edges, so that the frontier turns over inside it and NFNet and ViT cover the same compute.
#   NFNet: rungs nfnet_t3-t5 x 2-32 epochs (1.3e14 FLOPs planned), the ladder above the old top;
#   ViT:   all 4 rungs x 0.25-16 epochs (6.2e14 FLOPs planned; the old lattice stopped at t2 and 4).
# Both warm-started from the committed tables of the first study (benchmarks/study/{nfnet,vit}.csv),
# monotone searcher with in-cell early stopping (search.early_stop margin auto), checkpoints kept
# (the fine-tuning stage can start from them), one seed as in the first study.
#
# Hours on 2 cores (about 7 for the NFNets, 2 for the ViTs). Resumable: run it again after any
# interruption and each sweep continues with --resume; a finished one is skipped.
# Writes benchmarks/study/{nfnet,vit}_extended.csv (the new sweep's trials merged with the first
# study's, the newer run of a repeated (model, epochs, LR, seed) kept), analyses them into
# benchmarks/study/analysis/{nfnet,vit}_extended/ and benchmarks/study/analysis/compare_extended/,
# and re-runs the forecast check on the merged tables. The MLflow store and the Ray results stay
# in benchmarks/record/study_extended/ (not committed).
# ONLY=nfnet or ONLY=vit records one half. TABLES_ONLY=1 records nothing: it builds the tables and
# analyses from whatever the record holds so far (a half that has started), for an interim look.
# Where the NFNet half has not run, the NFNet side is benchmarks/study/nfnet_edges.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=${RS:-.venv/bin/raysweep}
PY=${PY:-.venv/bin/python}
REC=benchmarks/record/study_extended
URI="sqlite:///$PWD/$REC/mlflow.db"
mkdir -p "$REC"
. benchmarks/study/sweep.sh
if [ -z "${TABLES_ONLY:-}" ] && [ "${ONLY:-nfnet}" = nfnet ]; then
  sweep study_fashion_nfnet_up search_spaces/study/fashion_nfnet.yaml \
    --warm-start benchmarks/study/nfnet.csv --set tracking.experiment=study-fashion-nfnet-up \
    --set 'ladder.rungs=[nfnet_t3,nfnet_t4,nfnet_t5]' --set 'epochs=[2,4,8,16,32]'
fi
if [ -z "${TABLES_ONLY:-}" ] && [ "${ONLY:-vit}" = vit ]; then  # the cells the first study lacks, in two lattices (each a full product):
  # first the longer budgets of the measured rungs (the edge warning names vit_t0@4 and vit_t1@4),
  sweep study_fashion_vit_up search_spaces/study/fashion_vit.yaml \
    --warm-start benchmarks/study/vit.csv --set tracking.experiment=study-fashion-vit-up \
    --set 'ladder.rungs=[vit_t0,vit_t1,vit_t2]' --set 'epochs=[8,16]'
  # then the fourth rung at every budget
  sweep study_fashion_vit_t3 search_spaces/study/fashion_vit.yaml \
    --warm-start benchmarks/study/vit.csv --set tracking.experiment=study-fashion-vit-up \
    --set 'ladder.rungs=[vit_t3]' --set 'epochs=[0.25,0.5,1,2,4,8,16]'
fi
for s in nfnet vit; do  # a half's table once its sweeps are done (TABLES_ONLY: once it has started)
  if [ -n "${TABLES_ONLY:-}" ]; then
    [ -e "$REC/started-study_fashion_${s}_up" ] || continue
  else
    [ -e "$REC/done-study_fashion_${s}_up" ] || continue
    [ $s = nfnet ] || [ -e "$REC/done-study_fashion_vit_t3" ] || continue
  fi
  $RS table --tracking-uri "$URI" --experiment "study-fashion-$s-up" --out "$REC/${s}_up.csv"
  $PY benchmarks/study/merge_tables.py "benchmarks/study/$s.csv" "$REC/${s}_up.csv" \
    --out "benchmarks/study/${s}_extended.csv"
  $RS analyze --table "benchmarks/study/${s}_extended.csv" --out "benchmarks/study/analysis/${s}_extended"
done
nfnet=benchmarks/study/nfnet_extended.csv  # the NFNet side: the extended table, else the edges one
[ -e $nfnet ] || nfnet=benchmarks/study/nfnet_edges.csv
if [ -e benchmarks/study/vit_extended.csv ]; then
  $RS analyze --table $nfnet --table benchmarks/study/vit_extended.csv --out benchmarks/study/analysis/compare_extended
  tables=($nfnet benchmarks/study/vit_extended.csv)
  for law in chinchilla overfit auto; do  # L(N, D), the law for repeated data that can turn over, plan --law auto
    PYTHONPATH=. $PY benchmarks/validate_forecast.py "${tables[@]}" --law "$law" \
      --json "benchmarks/study/forecast_extended_$law.json" > "benchmarks/study/forecast_extended_$law.txt"
  done
  PYTHONPATH=. $PY benchmarks/repeated_law.py "${tables[@]}" --json benchmarks/study/repeated_law_extended.json \
    > benchmarks/study/repeated_law_extended.txt
fi
