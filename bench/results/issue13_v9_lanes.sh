#!/usr/bin/env bash
# Round v9 lanes: one more stage-1 round for Attention-Reg and Feature-Reg (image), the v5 recipe unchanged
# (lr 2e-4, 256 samples an epoch, the same pool) from the bundle of git f82c52f, on new samples (seed 4).
#   bash bench/results/issue13_v9_lanes.sh attreg            # epochs fitted to the 85 min budget
#   EPOCHS=N bash bench/results/issue13_v9_lanes.sh featreg  # N: the epochs attreg's run was fitted to
#   EPOCHS=N bash bench/results/issue13_v9_lanes.sh attreg-real  # the same samples, real anatomy only: the
#       PROMISE12 training folders alone (no phantom), validated on the same cases and starts as the others
#       (the built-in validation split comes as the folder val-builtin, so attreg's val_starts.csv is copied
#       with its case names changed: start the attreg lane first)
# Each stops after its budget (ONCE=1); ONCE=0 runs it to its last epoch (resumes).
set -euo pipefail
cd "$(dirname "$0")/../.."
m=$1; W=${W:-runs/w-bundle-f82c52f}
runs=runs/v9; cand=runs/cand-v9; pool=()  # train_bundled_weights.sh's default pool
case $m in
  attreg-real) m=attreg; fit=0; epochs=${EPOCHS:?the epochs attreg-s1 was fitted to}; runs=runs/v9real
    cand=runs/cand-v9real; pool=(BUILTIN=0 "DATASETS=promise12 rand-promise12 val-promise12 val-prostate-mr val-builtin")
    if [ ! -f $runs/attreg-s1/val_starts.csv ]; then
      mkdir -p $runs/attreg-s1
      sed 's|^builtin/|val-builtin/|' runs/v9/attreg-s1/val_starts.csv > $runs/attreg-s1/val_starts.csv
    fi ;;
  attreg) fit=1; epochs=${EPOCHS:-16} ;;
  featreg) fit=0; epochs=${EPOCHS:?the epochs attreg-s1 was fitted to} ;;
  *) echo "attreg, featreg or attreg-real" >&2; exit 2 ;;
esac
env "${pool[@]}" RUNS=$runs WEIGHTS=$cand INIT=$W SEED=4 S1_LR=2e-4 S1_EPOCHS=$epochs S1_SAMPLES=256 VAL_EVERY=2 \
  ONCE=${ONCE:-1} FIT=$fit S1_BUDGET=${BUDGET:-85m} EXTRA="--threads 1" ONLY=$m-s1 \
  bash scripts/train_bundled_weights.sh
