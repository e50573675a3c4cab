#!/usr/bin/env bash
# Evaluate the v5 candidates beside the v4 and v3 rows, on the same starts, resuming copies of /work/eval14's folders
# with the code that made them (/work/wt/eval12 at d09a21c: deep rows in float32, as the earlier rows).
# ROWS: which of attreg featreg dvnet chains to add (default all); the stage 2 of attreg is the bundled one (v4).
set -euo pipefail
cd /work/wt/eval12
export PATH=/work/wt/eval12/.venv/bin:$PATH
TAG=v5; SETS=${SETS:-real-anatomy-8mm builtin-8mm builtin-0-20mm}; ROWS=${ROWS:-attreg featreg dvnet chains}
C=/work/main/runs/cand-v5; W4=/work/main/runs/w-v4
for set in $SETS; do
  [ -d /work/eval15/$set ] || cp -r /work/eval14/$set /work/eval15/$set
  base=$(python3 -c "import json,sys;r=json.load(open('/work/eval15/$set/run.json'));c=r['command'];print(c[c.index('--methods')+1])")
  m="$base"; o=(); cmp=""
  if [[ " $ROWS " == *" attreg "* ]]; then
    m+=",attreg-$TAG=attreg"
    o+=(-O "attreg-$TAG.checkpoint=$C/attreg-stage1" -O "attreg-$TAG.stage2=$C/attreg-stage2")
    cmp+=",attreg-$TAG:identity,attreg-$TAG@2:attreg-$TAG@1,attreg-$TAG:attreg-v4,attreg-$TAG@1:attreg-v4@1"
    [[ $set != *0-20mm ]] && cmp+=",attreg-$TAG:mi,attreg-$TAG:mind"
    [[ $set == builtin* ]] && cmp+=",attreg-$TAG:attreg-old"
  fi
  if [[ " $ROWS " == *" featreg "* ]]; then
    m+=",featreg-$TAG=featreg"
    o+=(-O "featreg-$TAG.checkpoint=$C/featreg-stage1" -O "featreg-$TAG.stage2=$C/featreg-stage2")
    cmp+=",attreg-$TAG@1:featreg-$TAG@1,attreg-$TAG:featreg-$TAG,featreg-$TAG@2:featreg-$TAG@1,featreg-$TAG:featreg-v4"
  fi
  if [[ " $ROWS " == *" dvnet "* ]]; then
    m+=",dvnet-$TAG=dvnet"; o+=(-O "dvnet-$TAG.checkpoint=$C/dvnet-stage1"); cmp+=",dvnet-$TAG:dvnet-v4,dvnet-$TAG:identity"
  fi
  if [[ " $ROWS " == *" chains "* ]] && [[ $set != *0-20mm ]]; then
    m+=",chain-$TAG-mi=attreg+mi,chain-$TAG-mind=attreg+mind"
    o+=(-O "chain-$TAG-mi.attreg.checkpoint=$C/attreg-stage1" -O "chain-$TAG-mi.attreg.stage2=$C/attreg-stage2"
        -O "chain-$TAG-mind.attreg.checkpoint=$C/attreg-stage1" -O "chain-$TAG-mind.attreg.stage2=$C/attreg-stage2")
    cmp+=",chain-$TAG-mi:mi,chain-$TAG-mi:attreg-$TAG,chain-$TAG-mind:attreg-$TAG,chain-$TAG-mi:chain-v4-mi"
  fi
  extra=()
  [ $set = real-anatomy-8mm ] && extra=(--data runs/data/test-prostate-mr -k 5)
  old=$(python3 -c "
import json;r=json.load(open('/work/eval15/$set/run.json'));c=r['command']
print(' '.join(c[i+1] for i,a in enumerate(c) if a=='-O'))")
  for x in $old; do o+=(-O "$x"); done
  init=8mm; [[ $set == *0-20mm ]] && init=0-20mm
  before=$(python3 -c "import json;r=json.load(open('/work/eval15/$set/run.json'));print(r['statistics']['compare'])")
  echo "== $set"
  regkit compare "${extra[@]}" --methods "$m" --init "$init" --compare "$before$cmp" -o /work/eval15/$set "${o[@]}"
done
