#!/usr/bin/env bash
# Round v8 lanes: lane B's recipe of round v7 (v5's stage 2, lr 1e-4, 22 x 128 samples, seed 3) plus a rollout.
#   bash bench/results/issue13_v8_lanes.sh c   # rollout 0.5 from the v5 stage 1 (stage 2 learns where stage 1 leaves it)
#   bash bench/results/issue13_v8_lanes.sh d   # rollout 0.5, the stage 2's own 1-3 passes
# A lane that its 80 min budget stops (this machine: 14-17 s a step) is finished with ONCE=0 (resumes to the end).
lane=$1
case $lane in c) FROM=runs/w-v5 ;; d) FROM= ;; *) echo "lane c or d" >&2; exit 2 ;; esac
RUNS=runs/v8$lane WEIGHTS=runs/cand-v8/$lane VAL_EVERY=4 ONCE=${ONCE:-1} S2_BUDGET=80m SEED=3 BUILTIN=0 \
  S2_INIT=runs/w-v5 S2_LR=1e-4 S2_EPOCHS=22 S2_SAMPLES=128 ONLY=attreg-s2 \
  S2_ROLLOUT=0.5 S2_ROLLOUT_FROM=$FROM EXTRA="--threads 1" \
  DATASETS="train-builtin promise12 rand-promise12 rand-phantom val-promise12 val-prostate-mr val-builtin" \
  bash scripts/train_bundled_weights.sh
