#!/usr/bin/env bash
# Records issue 17's extended study: the lattice of benchmarks/study/record.sh pushed past its
# edges, so that the frontier turns over inside it and NFNet and ViT cover the same compute.
#   NFNet: rungs nfnet_t3-t5 x 2-32 epochs (1.3e14 FLOPs planned), the ladder above the old top,
#          then nfnet_t6 x 2-16 epochs (the rung the edge warning named after them);
#   ViT:   all 4 rungs x 0.25-16 epochs (6.2e14 FLOPs planned; the old lattice stopped at t2 and 4),
#          then vit_t4 x 4-16 epochs (the rung above vit_t3 the edge warning named).
# Both warm-started from the committed tables of the first study (benchmarks/study/{nfnet,vit}.csv),
# monotone searcher with in-cell early stopping (search.early_stop margin auto), checkpoints kept
# (the fine-tuning stage can start from them), one seed as in the first study.
#
# Hours on 2 cores (about 4 for the NFNets, 2 for the ViTs). Resumable: run it again after any
# interruption and each sweep continues with --resume; a finished one is skipped.
# The NFNet half runs as pieces, one rung (or one rung's longest budget) each, every one a sweep of
# its own: warm-started cells do not wait for their lattice neighbours, so a piece is the same
# sweep the full lattice would run for those cells. A finished piece writes its table to
# benchmarks/study/extended/<piece>.csv, which is committed; a piece whose table is there is
# skipped, so the half carries across machines, not only across interruptions. nfnet_t3 at 2-16
# epochs is not run again: the first study measured it.
# Writes benchmarks/study/{nfnet,vit}_extended.csv (the NFNet pieces merged with
# benchmarks/study/nfnet_edges.csv, the ViT sweeps with vit.csv; the newer run of a repeated
# (model, epochs, LR, seed) kept), analyses them into benchmarks/study/analysis/{nfnet,vit}_extended/
# and benchmarks/study/analysis/compare_extended/, and re-runs the forecast check on the merged
# tables. The MLflow store, the Ray results and the kept checkpoints stay in
# benchmarks/record/study_extended/ (not committed).
# ONLY=nfnet or ONLY=vit records one half; PIECES="t4 t3_32" records only those pieces (the ViT's
# first extension is the piece "up").
# TABLES_ONLY=1 records nothing: it builds the tables and analyses from what is recorded so far.
set -euo pipefail
cd "$(dirname "$0")/../.."
RS=${RS:-.venv/bin/raysweep}
PY=${PY:-.venv/bin/python}
REC=${REC:-benchmarks/record/study_extended}  # REC=... records into another store (two pieces at once)
URI="sqlite:///$PWD/$REC/mlflow.db"
mkdir -p "$REC"
. benchmarks/study/sweep.sh
PARTS=benchmarks/study/extended
mkdir -p "$PARTS"
piece() {  # piece FAMILY NAME RUNGS EPOCHS: one sweep of search_spaces/study/fashion_FAMILY.yaml,
  # warm-started from benchmarks/study/FAMILY.csv, its table committed once it is done
  local family=$1 name=$2
  [ -e "$PARTS/${family}_$name.csv" ] && { echo "$family piece $name: recorded ($PARTS/${family}_$name.csv)"; return 0; }
  [ -n "${TABLES_ONLY:-}" ] && return 0
  case " ${PIECES:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  sweep "study_fashion_${family}_$name" "search_spaces/study/fashion_$family.yaml" \
    --warm-start "benchmarks/study/$family.csv" --set "tracking.experiment=study-fashion-$family-$name" \
    --set "ladder.rungs=$3" --set "epochs=$4"
  $RS table --tracking-uri "$URI" --experiment "study-fashion-$family-$name" --out "$PARTS/${family}_$name.csv"
}
if [ "${ONLY:-nfnet}" = nfnet ]; then  # cheapest first: each piece is about 1 h on 2 cores
  piece nfnet t4 '[nfnet_t4]' '[2,4,8,16,32]'
  piece nfnet t3_32 '[nfnet_t3]' '[32]'
  piece nfnet t5 '[nfnet_t5]' '[2,4,8,16]'
  piece nfnet t5_32 '[nfnet_t5]' '[32]'
  # the rung above nfnet_t5, which the edge warning named once t5@16 held the frontier's top
  # (1.08M parameters; no 32 epochs: every rung measured there was worse than at 16)
  piece nfnet t6 '[nfnet_t6]' '[2,4,8,16]'
fi
if [ "${ONLY:-vit}" = vit ]; then
  # the cells the first study lacks, in two lattices (each a full product) recorded into one table,
  # $PARTS/vit_up.csv: first the longer budgets of the measured rungs (the edge warning named vit_t0@4
  # and vit_t1@4), then the fourth rung at every budget
  if [ ! -e "$PARTS/vit_up.csv" ] && [ -z "${TABLES_ONLY:-}" ] && case " ${PIECES:-up} " in *" up "*) true ;; *) false ;; esac; then
    sweep study_fashion_vit_up search_spaces/study/fashion_vit.yaml \
      --warm-start benchmarks/study/vit.csv --set tracking.experiment=study-fashion-vit-up \
      --set 'ladder.rungs=[vit_t0,vit_t1,vit_t2]' --set 'epochs=[8,16]'
    sweep study_fashion_vit_t3 search_spaces/study/fashion_vit.yaml \
      --warm-start benchmarks/study/vit.csv --set tracking.experiment=study-fashion-vit-up \
      --set 'ladder.rungs=[vit_t3]' --set 'epochs=[0.25,0.5,1,2,4,8,16]'
    $RS table --tracking-uri "$URI" --experiment study-fashion-vit-up --out "$PARTS/vit_up.csv"
  fi
  # the rung above vit_t3, which the edge warning named once vit_t3@16 held the frontier's top
  # (depth 8 where t3 has 4: twice its FLOPs; the budgets where a larger ViT can reach the top)
  piece vit t4 '[vit_t4]' '[4,8,16]'
fi
parts=("$PARTS"/nfnet_*.csv)  # the NFNet side: the first study with its edges, then every piece recorded
if [ -e "${parts[0]}" ]; then
  $PY benchmarks/study/merge_tables.py benchmarks/study/nfnet_edges.csv "${parts[@]}" \
    --out benchmarks/study/nfnet_extended.csv
  $RS analyze --table benchmarks/study/nfnet_extended.csv --out benchmarks/study/analysis/nfnet_extended
fi
vparts=("$PARTS"/vit_*.csv)  # the ViT side: the first study, then vit_up, then every piece recorded
if [ -e "${vparts[0]}" ]; then
  vparts=("$PARTS/vit_up.csv" $(printf '%s\n' "${vparts[@]}" | grep -v '/vit_up.csv$' || true))
  $PY benchmarks/study/merge_tables.py benchmarks/study/vit.csv "${vparts[@]}" --out benchmarks/study/vit_extended.csv
  $RS analyze --table benchmarks/study/vit_extended.csv --out benchmarks/study/analysis/vit_extended
fi
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
