#!/usr/bin/env bash
# Train the bundled weights on the built-in synthetic benchmark, on this CPU, resumably.
#
#   bash scripts/train_bundled_weights.sh            # runs (or resumes) every stage, then exports fp16 weights
#
# Each stage runs with a time budget; run the script again to resume an unfinished stage from its last
# checkpoint (the budget applies to each invocation). Runs go to runs/bundled/<name>; the best checkpoint
# of each (by validation SRE) is exported to deep/weights/<name>-stage<k>.safetensors (+ .json).
# SKIP="attreg-s1 featreg-s1" leaves those stages as they are (their best checkpoint is still exported).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/bundled}
SEED=${SEED:-0}

stage() {  # name method stage epochs budget [init-weights]
  local name=$1 method=$2 st=$3 epochs=$4 budget=$5 init=${6:-}
  local out=$RUNS/$name
  if [[ " ${SKIP:-} " == *" $name "* ]]; then echo "== $name: skipped (SKIP)"; return; fi
  if [ -f "$out/summary.json" ] && grep -q '"stop_reason": "epochs done"' "$out/summary.json"; then
    echo "== $name: done"; return
  fi
  local args=(train --method "$method" --stage "$st" --epochs "$epochs" --out "$out" --seed "$SEED"
              --time-budget "$budget" --val-every 2)
  if [ -f "$out/last.json" ]; then args+=(--resume "$out"); elif [ -n "$init" ]; then args+=(--init-weights "$init"); fi
  echo "== $name: regkit ${args[*]}"
  regkit "${args[@]}"
}

stage attreg-s1        attreg        1 80 ${BUDGET_S1:-80m}
stage attreg-label-s1  attreg-label  1 80 ${BUDGET_S1:-80m}
stage attreg-s2        attreg        2 40 ${BUDGET_S2:-35m} "$RUNS/attreg-s1/best.safetensors"
stage attreg-label-s2  attreg-label  2 40 ${BUDGET_S2:-35m} "$RUNS/attreg-label-s1/best.safetensors"
stage featreg-s1       featreg       1 80 ${BUDGET_S1:-80m}

python scripts/training_record.py --export "$RUNS"
