#!/usr/bin/env bash
# Round v8's test evaluation, with the current code (deep rows in float32, as in every earlier round): the three
# test sets, rows none, mi (8 mm sets), the bundled cascade `attreg`, the v5 cascade (the common ancestor of
# every round-v7/v8 stage 2) and one row per candidate stage 2 in CANDS ("tag=DIR ...": attreg-s2-<tag>, the
# bundled stage 1 and DIR/attreg-stage2). Run it again with more CANDS to add rows on the same starts.
#   OUT=/work/eval18 CANDS="v8c=runs/cand-v8/c-last v8d=runs/cand-v8/d-last" bash bench/results/issue13_v8_run_eval.sh
# (c-last, d-last: each lane's last epoch, exported from runs/v8X/attreg-s2/last with
#  regkit.deep.checkpoint.export_checkpoint, as the lanes export their best)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/results/issue13_test_sets.sh
OUT=${OUT:-/work/eval18}; W5=${W5:-runs/w-v5}
for set in ${SETS:-real-anatomy-8mm builtin-8mm builtin-0-20mm}; do
  m="identity"; cmp="attreg:identity,attreg@2:attreg@1,attreg:attreg-v5"
  [[ $set != *0-20mm ]] && { m+=",mi"; cmp+=",attreg:mi"; }
  m+=",attreg,attreg-v5=attreg"
  o=(-O attreg.precision=float32 -O attreg-v5.precision=float32 -O "attreg-v5.stage2=$W5/attreg-stage2")
  for cand in ${CANDS:-}; do
    r=attreg-s2-${cand%%=*}; dir=${cand#*=}
    m+=",$r=attreg"; o+=(-O "$r.precision=float32" -O "$r.stage2=$dir/attreg-stage2")
    cmp+=",$r:identity,$r@2:$r@1,$r:attreg,$r:attreg-v5"
    [[ $set != *0-20mm ]] && cmp+=",$r:mi"
  done
  compare_test_set "$set" "$m" "$cmp" "$OUT" "${o[@]}"
done
