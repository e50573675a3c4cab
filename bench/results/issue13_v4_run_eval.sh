#!/usr/bin/env bash
# Evaluate the v4 candidates beside the v3 rows, on the same starts, resuming copies of /work/eval13's folders with
# the code that made them (/work/wt/eval12 at d09a21c: deep rows in float32, as the v3 rows).
# S2=DIR: where attreg's stage 2 comes from (runs/cand-v4 or runs/w-v3); TAG: the row label suffix.
set -euo pipefail
cd /work/wt/eval12
export PATH=/work/wt/eval12/.venv/bin:$PATH
S2=${S2:-runs/w-v3}; TAG=${TAG:-v4}; SETS=${SETS:-real-anatomy-8mm builtin-8mm builtin-0-20mm}
C=runs/cand-v4
for set in $SETS; do
  [ -d /work/eval14/$set ] || cp -r /work/eval13/$set /work/eval14/$set
  base=$(python3 -c "import json,sys;r=json.load(open('/work/eval14/$set/run.json'));c=r['command'];print(c[c.index('--methods')+1])")
  m="$base,attreg-$TAG=attreg,featreg-$TAG=featreg"
  o=(-O "attreg-$TAG.checkpoint=$C/attreg-stage1" -O "attreg-$TAG.stage2=$S2/attreg-stage2"
     -O "featreg-$TAG.checkpoint=$C/featreg-stage1" -O "featreg-$TAG.stage2=runs/w-v3/featreg-stage2")
  cmp="attreg-$TAG:identity,attreg-$TAG@1:featreg-$TAG@1,attreg-$TAG:featreg-$TAG,attreg-$TAG@2:attreg-$TAG@1,attreg-$TAG:attreg,attreg-$TAG@1:attreg@1,featreg-$TAG@1:featreg@1,attreg-$TAG:attreg-old"
  if [ -f $C/dvnet-stage1.safetensors ]; then
    m+=",dvnet-$TAG=dvnet"; o+=(-O "dvnet-$TAG.checkpoint=$C/dvnet-stage1"); cmp+=",dvnet-$TAG:dvnet,dvnet-$TAG:identity"
  fi
  if [[ $set != *0-20mm ]]; then
    m+=",chain-$TAG-mi=attreg+mi,chain-$TAG-mind=attreg+mind"
    o+=(-O "chain-$TAG-mi.attreg.checkpoint=$C/attreg-stage1" -O "chain-$TAG-mi.attreg.stage2=$S2/attreg-stage2"
        -O "chain-$TAG-mind.attreg.checkpoint=$C/attreg-stage1" -O "chain-$TAG-mind.attreg.stage2=$S2/attreg-stage2")
    cmp+=",attreg-$TAG:mi,attreg-$TAG:mind,chain-$TAG-mi:mi,chain-$TAG-mi:attreg-$TAG,chain-$TAG-mind:attreg-$TAG"
  fi
  extra=()
  [ $set = real-anatomy-8mm ] && extra=(--data runs/data/test-prostate-mr -k 5)
  old=$(python3 -c "
import json;r=json.load(open('/work/eval14/$set/run.json'));c=r['command']
print(' '.join(c[i+1] for i,a in enumerate(c) if a=='-O'))")
  for x in $old; do o+=(-O "$x"); done
  init=8mm; [[ $set == *0-20mm ]] && init=0-20mm
  before=$(python3 -c "import json;r=json.load(open('/work/eval14/$set/run.json'));print(r['statistics']['compare'])")
  echo "== $set"
  regkit compare "${extra[@]}" --methods "$m" --init "$init" --compare "$before,$cmp" -o /work/eval14/$set "${o[@]}"
done
