#!/usr/bin/env bash
# Train every bundled network on this machine, resumably; export fp16 weights and model cards.
#
#   bash scripts/make_training_data.sh        # once: the training and validation data (runs/data)
#   bash scripts/train_bundled_weights.sh     # runs (or resumes) every stage, exporting each when it is done
#
# Budgets. Attention-Reg and Feature-Reg, image and label, and DVNet see the same number of training samples
# per stage: S1_EPOCHS × S1_SAMPLES for stage 1 and S2_EPOCHS × S2_SAMPLES for stage 2 (fresh starts each
# sample: 0-20 mm for stage 1, 0-8 mm for stage 2), on the same pooled data, with the same seed and the same
# validation starts, so the ablations (attention or not, image or label) compare like with like. MSReg costs
# 3.6× Attention-Reg's compute per sample on this CPU; it gets the same compute time per stage instead
# (MSREG_S1_* and MSREG_S2_*: about 0.28× the samples). Stage 2 starts from stage 1's best weights; Feature-Reg
# gets the same two stages as Attention-Reg. DVNet has one stage, as in the paper.
#
# Each invocation of `regkit train` stops after BUDGET (then resumes from the run's last.*), so the script
# can be stopped at any time (Ctrl-C, SIGTERM) and run again to continue where it was. Runs go to
# runs/bundled/<name>; when a stage finishes, its best checkpoint (by validation SRE) is exported to
# deep/weights/<method>-stage<k>.safetensors (+ .json, and a model card .md with its curve .png).
# ONLY="attreg-s1 attreg-s2" runs just those stages (in this file's order); SKIP="..." leaves some out.
# EXTRA="--threads 1" (or "--device cuda") passes more options to every regkit train.
# INIT=DIR starts each stage 1 from DIR/<method>-stage1 (a fine-tune; Feature-Reg (label) falls back to
# DIR/featreg-stage1, which has the same layers) instead of a random initialisation; the model card says so.
# S2_INIT=DIR starts each stage 2 from DIR/<method>-stage2 where that exists (else from stage 1's best, as always).
# S1_LR, S2_LR: the learning rate of every stage-1 / stage-2 run [each network's paper value]; a fine-tune
# usually wants a smaller one.
# S2_ROLLOUT=F: each stage 2 trains a fraction F of its samples on where a network leaves a fresh start
# (--rollout) [0]. S2_ROLLOUT_FROM: whose one pass moves them: `stage1` (this run's stage 1 best, the network
# the stage 2 follows in the cascade), DIR (DIR/<method>-stage1), or empty (the stage 2's own 1-3 passes) [].
#
# One invocation per stage, on a fixed time plan (what scripts/train_all.sh uses):
#   ONCE=1        each stage is one `regkit train` of its budget; a stop by the time budget ends the stage
#                 (no resume loop). A stage with a summary.json counts as done when the script is run again.
#   S1_BUDGET, S2_BUDGET, DVNET_BUDGET
#                 the time budget of stage 1, stage 2 and DVNet's invocations [BUDGET] (e.g. 150s)
#   FIT=1         --fit-epochs: the epochs (at most S1_EPOCHS/S2_EPOCHS...) are fitted to the budget after the
#                 first steps, so the learning-rate schedule completes within it
#   S1_SAMPLES=0  (and the others) one sample per training case per epoch, as in the paper
#   VAL_EVERY=N   validate every N epochs [1];  DATASETS="..." the dataset folders under DATA to pool
#   [promise12 rand-promise12 rand-phantom val-promise12 val-prostate-mr];  BUILTIN=0 leaves the built-in
#   benchmark out;  WEIGHTS=DIR exports there [deep/weights];  HOST="..." the machine, for the model cards.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/bundled}
DATA=${DATA:-runs/data}
SEED=${SEED:-0}
BUDGET=${BUDGET:-45m}
S1_EPOCHS=${S1_EPOCHS:-10}
S1_SAMPLES=${S1_SAMPLES:-256}
S2_EPOCHS=${S2_EPOCHS:-6}
S2_SAMPLES=${S2_SAMPLES:-192}
MSREG_S1_EPOCHS=${MSREG_S1_EPOCHS:-8}
MSREG_S1_SAMPLES=${MSREG_S1_SAMPLES:-88}
MSREG_S2_EPOCHS=${MSREG_S2_EPOCHS:-6}
MSREG_S2_SAMPLES=${MSREG_S2_SAMPLES:-52}
EXTRA=${EXTRA:-}
ONCE=${ONCE:-0}
FIT=${FIT:-0}
VAL_EVERY=${VAL_EVERY:-1}
WEIGHTS=${WEIGHTS:-deep/weights}
DATASETS=${DATASETS:-promise12 rand-promise12 rand-phantom val-promise12 val-prostate-mr}

DATA_ARGS=()
if [ "${BUILTIN:-1}" = 1 ]; then DATA_ARGS+=(--data builtin); fi
for d in $DATASETS; do
  if [ ! -f "$DATA/$d/dataset.json" ]; then
    echo "missing $DATA/$d: run scripts/make_training_data.sh first" >&2; exit 2
  fi
  DATA_ARGS+=(--data "$DATA/$d")
done

stage() {  # name method stage [init-weights]
  local name=$1 method=$2 st=$3 init=${4:-} stage1_best=${4:-}
  local out=$RUNS/$name epochs=$S1_EPOCHS per=$S1_SAMPLES budget=${S1_BUDGET:-$BUDGET}
  local lr=${S1_LR:-}
  if [ "$st" = 2 ]; then epochs=$S2_EPOCHS; per=$S2_SAMPLES; budget=${S2_BUDGET:-$BUDGET}; lr=${S2_LR:-}; fi
  if [ "$method" = dvnet ]; then budget=${DVNET_BUDGET:-$budget}; fi
  if [ "$method" = msreg ] && [ "$st" = 1 ]; then epochs=$MSREG_S1_EPOCHS; per=$MSREG_S1_SAMPLES; fi
  if [ "$method" = msreg ] && [ "$st" = 2 ]; then epochs=$MSREG_S2_EPOCHS; per=$MSREG_S2_SAMPLES; fi
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  if [[ " ${SKIP:-} " == *" $name "* ]]; then echo "== $name: skipped (SKIP)"; return; fi
  if [ "$st" = 1 ] && [ -z "$init" ] && [ -n "${INIT:-}" ]; then
    for cand in "$INIT/$method-stage1" "$INIT/${method%-label}-stage1"; do
      if [ -f "$cand.safetensors" ]; then init=$cand; break; fi
    done
  fi
  if [ "$st" = 2 ] && [ -n "${S2_INIT:-}" ] && [ -f "$S2_INIT/$method-stage2.safetensors" ]; then
    init=$S2_INIT/$method-stage2
  fi
  while ! { [ -f "$out/summary.json" ] && { [ "$ONCE" = 1 ] ||
                                             grep -q '"stop_reason": "epochs done"' "$out/summary.json"; }; }; do
    local args=(train --method "$method" --stage "$st" --epochs "$epochs" --out "$out" --seed "$SEED"
                --time-budget "$budget" --val-starts 3 --val-every "$VAL_EVERY" --augment "${DATA_ARGS[@]}")
    if [ "$per" != 0 ]; then args+=(--samples-per-epoch "$per"); fi
    if [ "$FIT" = 1 ]; then args+=(--fit-epochs); fi
    if [ -n "$lr" ]; then args+=(--lr "$lr"); fi
    if [ "$st" = 2 ] && [ -n "${S2_ROLLOUT:-}" ] && [ "${S2_ROLLOUT}" != 0 ]; then
      args+=(--rollout "$S2_ROLLOUT")
      case "${S2_ROLLOUT_FROM:-}" in
        "") ;;
        stage1) args+=(--rollout-from "$stage1_best") ;;
        *) args+=(--rollout-from "$S2_ROLLOUT_FROM/$method-stage1") ;;
      esac
    fi
    if [ -f "$out/last.json" ]; then
      args+=(--resume "$out")
    elif [ -n "$init" ]; then
      args+=(--init-weights "$init")
    fi
    # shellcheck disable=SC2086
    echo "== $name: regkit ${args[*]} $EXTRA"
    # shellcheck disable=SC2086
    regkit "${args[@]}" $EXTRA
  done
  echo "== $name: done"
  python scripts/training_record.py --export --dest "$WEIGHTS" ${HOST:+--host "$HOST"} "$RUNS" "$name"
}

stage attreg-s1         attreg         1
stage featreg-s1        featreg        1
stage attreg-s2         attreg         2 "$RUNS/attreg-s1/best"
stage featreg-s2        featreg        2 "$RUNS/featreg-s1/best"
stage attreg-label-s1   attreg-label   1
stage featreg-label-s1  featreg-label  1
stage attreg-label-s2   attreg-label   2 "$RUNS/attreg-label-s1/best"
stage featreg-label-s2  featreg-label  2 "$RUNS/featreg-label-s1/best"
stage dvnet-s1          dvnet          1
stage msreg-s1          msreg          1
stage msreg-s2          msreg          2 "$RUNS/msreg-s1/best"
python scripts/training_record.py "$RUNS"
