#!/usr/bin/env bash
# Proves a refactor changed no output: runs the same commands on two revisions of raysweep (the same
# .venv, each revision's own code) and compares every file they write, byte for byte.
# Usage: benchmarks/house/identical.sh BASE_REV [--demo] [HEAD_REV]   (HEAD_REV: default the work tree)
#   the study's and the recorded tables' analyses (figures, report.md, fit.json and what analyze
#   prints), the searcher replay tables, the warm-start replay matrix, the forecast check, every
#   search space's --dry-run, and with --demo the demo sweep's per-cell table (a real Ray sweep
#   per revision: a few minutes each on 2 cores).
# Writes benchmarks/house/identical.txt (the comparison) and leaves both output folders in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${1:?usage: identical.sh BASE_REV [--demo] [HEAD_REV]}
DEMO=${2:-}
HEAD_REV=${3:-}
ROOT=$PWD
PY=$ROOT/.venv/bin/python
OUT=${OUT:-$(mktemp -d /tmp/house-identical.XXXX)}
git worktree add -q --detach "$OUT/base-tree" "$BASE"
HEAD_TREE=$ROOT
if [ -n "$HEAD_REV" ]; then
  git worktree add -q --detach "$OUT/head-tree" "$HEAD_REV"; HEAD_TREE=$OUT/head-tree
fi
trap 'git worktree remove --force "$OUT/base-tree"; [ -z "$HEAD_REV" ] || git worktree remove --force "$OUT/head-tree"' EXIT

outputs() {  # tree, out folder (each revision writes to the same path, which its output may print)
  local tree=$1 final=$2 out=$OUT/cur
  mkdir -p "$out"
  # run inside the revision's tree: `python -m` puts the current folder first on sys.path
  rs() { (cd "$tree" && PYTHONPATH="$tree" MPLBACKEND=Agg "$PY" -m raysweep "$@"); }
  for t in benchmarks/study/nfnet.csv benchmarks/study/vit.csv benchmarks/fashion_grid_agc0.16.csv \
           benchmarks/mnist5k_grid_agc0.16.csv; do
    name=$(basename "$t" .csv)
    rs analyze --table "$ROOT/$t" --out "$out/analyze/$name" > "$out/analyze-$name.txt" 2>&1
  done
  rs analyze --table "$ROOT/benchmarks/study/nfnet.csv" --table "$ROOT/benchmarks/study/vit.csv" --out "$out/analyze/compare" \
    > "$out/analyze-compare.txt" 2>&1
  for t in benchmarks/mnist5k_grid.csv benchmarks/fashion_grid.csv benchmarks/mnist5k_grid_agc0.16.csv \
           benchmarks/fashion_grid_agc0.16.csv; do
    rs bench searcher --table "$ROOT/$t" > "$out/bench-$(basename "$t" .csv).txt" 2>&1
  done
  (cd "$tree" && PYTHONPATH="$tree" "$PY" benchmarks/warm_start_replay.py --matrix \
     "$ROOT/benchmarks/fashion_grid_agc0.16.csv" "$ROOT/benchmarks/mnist5k_grid_agc0.16.csv" > "$out/warm_start_replay.txt" 2>&1)
  (cd "$tree" && PYTHONPATH="$tree" "$PY" benchmarks/validate_forecast.py "$ROOT/benchmarks/study/nfnet.csv" \
     "$ROOT/benchmarks/study/vit.csv" --json "$out/forecast_validation.json" > "$out/forecast_validation.txt" 2>&1)
  for s in search_spaces/*.yaml search_spaces/study/*.yaml; do  # the same files, from the revision's tree
    rs run --dry-run "$s" > "$out/dryrun-$(basename "$s" .yaml).txt" 2>&1 || true
  done
  if [ "$DEMO" = --demo ]; then  # the per-cell table (timings and run ids vary: only the table is kept)
    local d; d=$(mktemp -d)
    (cd "$tree" && PYTHONPATH="$tree" "$PY" -m raysweep run search_spaces/demo.yaml --quiet \
       --results "$d/results" --tracking-uri "sqlite:///$d/mlflow.db" 2>"$OUT/demo-$(basename "$final").err" \
       | sed -n '/^cell /,/^$/p' > "$out/demo-cells.txt")
    rm -rf "$d"
  fi
  mv "$out" "$final"
}

outputs "$OUT/base-tree" "$OUT/base"
outputs "$HEAD_TREE" "$OUT/head"
{
  if [ -n "$HEAD_REV" ]; then echo "# outputs of $BASE against $(git rev-parse --short "$HEAD_REV")"
  else echo "# outputs of $BASE against $(git rev-parse --short HEAD) ($(git status --porcelain | wc -l) files changed in the work tree)"; fi
  echo "files compared: $(cd "$OUT/base" && find . -type f | wc -l)"
  if diff -r "$OUT/base" "$OUT/head" > "$OUT/diff.txt"; then
    echo "result: byte-identical"
  else
    echo "result: DIFFERENT"; head -50 "$OUT/diff.txt"
  fi
  (cd "$OUT/head" && find . -type f | sort | xargs sha256sum)
} | tee benchmarks/house/identical.txt
