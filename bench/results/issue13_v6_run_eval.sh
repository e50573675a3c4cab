#!/usr/bin/env bash
# Evaluate a training round's candidates beside the earlier rounds' rows, on the same starts: copies SRC's
# comparison folders to DST and resumes them with rows "<row>-TAG" added, with the code that made the earlier rows
# (/work/wt/eval12 at d09a21c: deep rows in float32). ROWS: which of attreg-label featreg-label featreg to add.
#   TAG=v6 SRC=/work/eval15 DST=/work/eval16 C=runs/cand-v6 bash bench/results/issue13_v6_run_eval.sh
# attreg-label-TAG and featreg-label-TAG: both stages from C (the label variants on the v4 image recipes);
# featreg-TAG: the bundled (v5) stage 1 and the stage 2 FS2 [C/featreg-stage2] (topped up to Attention-Reg's
# stage-2 samples; this round: runs/v6/featreg-s2/last, as no epoch beat the bundled weights on validation).
# attreg-s2-TAG (round v7): the bundled (v5) stage 1 and the stage 2 C/attreg-stage2.
#   TAG=v7a SRC=/work/eval16 DST=/work/eval17 C=runs/cand-v7/a ROWS=attreg-s2 bash bench/results/issue13_v6_run_eval.sh
# PAIRS="A:B ..." adds any other comparisons (rows of this run or of earlier ones), after the rows' own; round
# v7 compared its rows with PAIRS="attreg-s2-v7b:attreg-s2-v7a" and "attreg-s2-v7s:featreg-v7s" (and the label
# pairs in BENCHMARKS.md).
set -euo pipefail
cd /work/wt/eval12
export PATH=/work/wt/eval12/.venv/bin:$PATH
TAG=${TAG:-v6}; SRC=${SRC:-/work/eval15}; DST=${DST:-/work/eval16}; C=$(realpath "${C:-/work/main/runs/cand-v6}")
W5=/work/main/runs/cand-v5; FS2=$(realpath "${FS2:-$C/featreg-stage2}")
SETS=${SETS:-real-anatomy-8mm builtin-8mm builtin-0-20mm}; ROWS=${ROWS:-attreg-label featreg-label featreg}
json() { python3 -c "import json,sys; r=json.load(open('$DST/$1/run.json')); $2"; }
for set in $SETS; do
  [ -d "$DST/$set" ] || cp -r "$SRC/$set" "$DST/$set"
  m=$(json "$set" "c=r['command']; print(c[c.index('--methods')+1])"); o=(); cmp=""
  iterative=0; [[ $set != *0-20mm ]] && iterative=1
  if [[ " $ROWS " == *" attreg-label "* ]]; then
    r=attreg-label-$TAG; m+=",$r=attreg-label"
    o+=(-O "$r.checkpoint=$C/attreg-label-stage1" -O "$r.stage2=$C/attreg-label-stage2")
    cmp+=",$r:identity,$r@2:$r@1,$r:attreg-label,$r@1:attreg-v4@1,$r:attreg-v4"
    [ $iterative = 1 ] && cmp+=",$r:mi,$r:mind"
  fi
  if [[ " $ROWS " == *" featreg-label "* ]]; then
    r=featreg-label-$TAG; m+=",$r=featreg-label"
    o+=(-O "$r.checkpoint=$C/featreg-label-stage1" -O "$r.stage2=$C/featreg-label-stage2")
    cmp+=",$r@2:$r@1,$r:featreg-label,$r@1:featreg-v4@1,attreg-label-$TAG@1:$r@1,attreg-label-$TAG:$r"
  fi
  if [[ " $ROWS " == *" featreg "* ]]; then
    r=featreg-$TAG; m+=",$r=featreg"
    o+=(-O "$r.checkpoint=$W5/featreg-stage1" -O "$r.stage2=$FS2")
    cmp+=",$r@2:$r@1,$r:featreg-v5,attreg-v5:$r"
  fi
  if [[ " $ROWS " == *" attreg-s2 "* ]]; then
    r=attreg-s2-$TAG; m+=",$r=attreg"
    o+=(-O "$r.checkpoint=$W5/attreg-stage1" -O "$r.stage2=$C/attreg-stage2")
    cmp+=",$r:identity,$r@2:$r@1,$r:attreg-v5"
    [ $iterative = 1 ] && cmp+=",$r:mi,$r:mind"
  fi
  for pair in ${PAIRS:-}; do cmp+=",$pair"; done
  for x in $(json "$set" "c=r['command']; print(' '.join(c[i+1] for i,a in enumerate(c) if a=='-O'))"); do
    o+=(-O "$x")
  done
  extra=(); [ "$set" = real-anatomy-8mm ] && extra=(--data runs/data/test-prostate-mr -k 5)
  init=8mm; [[ $set == *0-20mm ]] && init=0-20mm
  before=$(json "$set" "print(r['statistics']['compare'])")
  echo "== $set"
  regkit compare "${extra[@]}" --methods "$m" --init "$init" --compare "$before$cmp" -o "$DST/$set" "${o[@]}"
done
