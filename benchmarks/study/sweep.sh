# Sourced by record_extended.sh and record_edges.sh: one resumable sweep of the extended study.
#   sweep NAME SPACE [raysweep run args...]
# Needs RS, REC and URI set. A finished sweep leaves $REC/done-NAME and is skipped; a started one
# (an interrupted run) continues with --resume. Monotone with search.early_stop (margin auto).
sweep() {
  local name=$1 space=$2; shift 2
  [ -e "$REC/done-$name" ] && { echo "$name: already recorded"; return; }
  local again=()  # a second run of the script continues an interrupted sweep
  [ -e "$REC/started-$name" ] && again=(--resume)
  touch "$REC/started-$name"
  $RS run "$space" --quiet --tracking-uri "$URI" --results "$REC/results" "${again[@]}" \
    --set name="$name" --set 'search.early_stop={margin: auto}' "$@"
  touch "$REC/done-$name"
}
