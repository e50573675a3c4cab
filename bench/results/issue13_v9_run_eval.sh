#!/usr/bin/env bash
# Round v9's test evaluation (deep rows in float32, as in every earlier round): the three test sets, on the starts
# of round v8's evaluation when OUT is a copy of it (rows none, mi, attreg there already; regkit compare adds the
# rest on the same starts). Rows: the bundled Feature-Reg cascade, and for each "tag=DIR" of CANDS and each network
# with a DIR/<net>-stage1, the cascade <net>-s1<tag>: that stage 1, then the bundled stage 2 of the same network.
# (Round v9: runs/cand-v9 holds only attreg-stage1; Feature-Reg's run did not beat its bundled stage 1, whose
# export was moved to runs/cand-v9/not-bundled.)
# The rows `attreg` and `featreg` are the bundled cascades as they were when the folder's rows were made: in
# round v9, round v8's rows of the bundle of git f82c52f (copied with the folder). Run on a new folder after the
# round-v9 bundle landed, `attreg` is that bundle, and equal to attreg-s1v9.
#   cp -r /work/eval18 /work/eval19
#   OUT=/work/eval19 CANDS="v9=runs/cand-v9 v9real=runs/cand-v9real" bash bench/results/issue13_v9_run_eval.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/results/issue13_test_sets.sh
OUT=${OUT:-/work/eval19}; W=${W:-runs/w-bundle-f82c52f}
for set in ${SETS:-real-anatomy-8mm builtin-8mm builtin-0-20mm}; do
  m="identity"; cmp="attreg:featreg,attreg@1:featreg@1"
  [[ $set != *0-20mm ]] && m+=",mi"
  m+=",attreg,featreg"
  o=(-O attreg.precision=float32 -O featreg.precision=float32)
  for cand in ${CANDS:-v9=runs/cand-v9}; do
    tag=${cand%%=*}; dir=${cand#*=}
    for net in attreg featreg; do
      [ -f "$dir/$net-stage1.safetensors" ] || continue
      r=$net-s1$tag
      m+=",$r=$net"
      o+=(-O "$r.precision=float32" -O "$r.checkpoint=$dir/$net-stage1" -O "$r.stage2=$W/$net-stage2")
      cmp+=",$r:$net,$r@1:$net@1,$r@2:$r@1,$r:identity"
      [[ $set != *0-20mm ]] && cmp+=",$r:mi"
    done
    if [ -f "$dir/attreg-stage1.safetensors" ]; then  # attention against none, with Feature-Reg's row of the tag, or
      f=featreg; [ -f "$dir/featreg-stage1.safetensors" ] && f=featreg-s1$tag  # its bundled one where it kept that
      cmp+=",attreg-s1$tag:$f,attreg-s1$tag@1:$f@1"
    fi
  done
  compare_test_set "$set" "$m" "$cmp" "$OUT" "${o[@]}"
done
