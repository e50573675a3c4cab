#!/usr/bin/env bash
# Train every network (Attention-Reg and Feature-Reg, image and label input, two stages each; MSReg, two stages;
# DVNet, one stage) on one machine, check the exported weights on the device against the CPU, and time them.
#
#   bash scripts/train_all.sh --device cuda runs/gpu       # a CUDA machine: the paper's recipe, about 10 minutes
#   bash scripts/train_all.sh --tiny runs/tiny             # the same path on a CPU at a tiny scale (a check)
#
# Options (before OUT):
#   --device cuda|cpu   where the networks train [cuda]; on cuda with bf16 autocast
#   --budget SECONDS    training time per network, both stages together [cuda: 420; tiny: 30]; split 62/38
#                       between stage 1 and stage 2, and --fit-epochs fits the epochs to each stage's share so that
#                       the learning-rate schedule completes
#   --parallel N        networks trained at once [cuda: 6 (one GPU holds them all); cpu: 1; tiny: 3]
#   --data DIR          the rendered training and validation data [runs/data]; rendered there by
#                       scripts/make_training_data.sh when missing (it needs ../shared/data, or SHARED=...)
#   --tiny              a few randomised cases rendered into OUT/data, batch 2, one torch thread, CPU
#
# Writes into OUT:
#   runs/<network>-s<k>/      each stage's run (history.csv, summary.json, checkpoints; resumable)
#   weights/                  the best checkpoint of each stage by validation SRE, fp16, with its model card
#   training.md               per stage: stop reason, epochs, samples, training seconds, samples per second,
#                             validation SRE start → best
#   device_check.md, .json    scripts/check_device.py: the largest |device − CPU| difference of each stage's outputs
#                             (float32, TF32 off; it fails above 1e-3 mm/degrees), ms per stage at batch 1 and at the
#                             training batch, ms per registration
#   log.txt, logs/            everything printed, one log per network
#
# Then, to bundle what wins on validation: bash scripts/bundle_if_better.sh OUT/weights
# Recipe: the paper's (each network's declared batch size, learning rate and schedule; one sample per training case
# per epoch; 0-20 mm starts for stage 1, 0-8 mm for stage 2; up to 300 epochs), with augmentation and 3 validation
# starts per validation case. The knobs of scripts/train_bundled_weights.sh (SEED, INIT, S1_LR, ...) pass through
# the environment. A machine without network access: see scripts/offline_bundle.sh.
set -uo pipefail
usage() { sed -n '2,8p' "$0" >&2; exit 2; }
DEVICE=cuda BUDGET="" PARALLEL="" DATA=runs/data TINY=${TINY:-0}  # TINY=1: as --tiny
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:?}; shift 2 ;;
    --budget) BUDGET=${2:?}; shift 2 ;;
    --parallel) PARALLEL=${2:?}; shift 2 ;;
    --data) DATA=${2:?}; shift 2 ;;
    --tiny) TINY=1; DEVICE=cpu; shift ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# = 1 ] || usage
if [ "$TINY" = 1 ]; then DEVICE=cpu; fi
cd "$(dirname "$0")/.."
mkdir -p "$1" && OUT=$(realpath "$1")
mkdir -p "$OUT/logs" "$OUT/weights"
LOG=$OUT/log.txt
T0=$(date +%s)
log() { printf '[+%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" | tee -a "$LOG"; }
export PYTHONUNBUFFERED=1 REGKIT_NO_PROGRESS=1

if [ "$TINY" = 1 ]; then BUDGET=${BUDGET:-30}; PARALLEL=${PARALLEL:-3}; fi
case $DEVICE in
  cuda*) EXTRA="--device $DEVICE --bf16 --threads 2"; BUDGET=${BUDGET:-420}; PARALLEL=${PARALLEL:-6}; VAL_EVERY=${VAL_EVERY:-4}
         python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" ||
           { log "no CUDA device visible to torch: use --device cpu"; exit 1; } ;;
  cpu) EXTRA="--device cpu"; BUDGET=${BUDGET:-3600}; PARALLEL=${PARALLEL:-1}; VAL_EVERY=${VAL_EVERY:-2} ;;
  *) echo "--device must be cuda, cuda:N or cpu" >&2; exit 2 ;;
esac
BUILTIN=1
if [ "$TINY" = 1 ]; then
  VAL_EVERY=1; EXTRA="--device cpu --threads 1 --batch-size 2"; BUILTIN=0
  export REGKIT_CACHE=$OUT/cache
  DATA=$OUT/data
  SHARED=${SHARED:-../shared/data}
  synth() { local name=$1; shift; [ -f "$DATA/$name/dataset.json" ] ||
    regkit synth --out "$DATA/$name" "$@" > "$OUT/logs/synth-$name.log" 2>&1 || log "synth $name failed"; }
  log "data: a tiny set in $DATA"
  synth tiny-phantom --cases 3 --seed 11 --split-sizes 2,1,0 --randomise --workers 1
  if [ -d "$SHARED/prostate_mr" ]; then
    synth val-prostate-mr --from-mr "$SHARED/prostate_mr" --cases 1 --seed 15 --split-sizes 0,1,0 --workers 1
  fi
  DATASETS=$(cd "$DATA" && for d in */; do [ -f "$d/dataset.json" ] && printf '%s ' "${d%/}"; done)
else
  DATASETS=${DATASETS:-promise12 rand-promise12 rand-phantom val-promise12 val-prostate-mr}
  missing=0
  for d in $DATASETS; do [ -f "$DATA/$d/dataset.json" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    log "data: rendering into $DATA (scripts/make_training_data.sh)"
    DATA=$DATA bash scripts/make_training_data.sh > "$OUT/logs/data.log" 2>&1 || { log "data: FAILED (logs/data.log)"; exit 1; }
  fi
fi
log "train_all: device $DEVICE, $BUDGET s per network, $PARALLEL at once, data $DATA: $DATASETS"
if command -v nvidia-smi >/dev/null && [[ $DEVICE == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
fi
HOST=${HOST:-$(python - "$DEVICE" "$PARALLEL" <<'EOF'
import os, sys
import torch
device, parallel = sys.argv[1], sys.argv[2]
where = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
print(f"{where}, {os.cpu_count()} cores; {parallel} network(s) trained at once by scripts/train_all.sh")
EOF
)}

S1=$(( BUDGET * 62 / 100 )); S2=$(( BUDGET - S1 ))
lane() {  # name stages...
  local name=$1; shift
  RUNS=$OUT/runs DATA=$DATA DATASETS="$DATASETS" BUILTIN=$BUILTIN ONCE=1 FIT=1 VAL_EVERY=$VAL_EVERY \
    S1_EPOCHS=300 S1_SAMPLES=0 S2_EPOCHS=300 S2_SAMPLES=0 MSREG_S1_EPOCHS=300 MSREG_S1_SAMPLES=0 \
    MSREG_S2_EPOCHS=300 MSREG_S2_SAMPLES=0 S1_BUDGET=${S1}s S2_BUDGET=${S2}s DVNET_BUDGET=${BUDGET}s \
    EXTRA="$EXTRA" WEIGHTS=$OUT/weights HOST="$HOST" ONLY="$*" \
    bash scripts/train_bundled_weights.sh > "$OUT/logs/$name.log" 2>&1
  local rc=$?
  if [ "$rc" = 0 ]; then log "train: $name ok"; else log "train: $name FAILED (exit $rc, logs/$name.log)"; fi
  echo "$name $rc" >> "$OUT/logs/lanes.txt"
}
: > "$OUT/logs/lanes.txt"
for spec in "msreg:msreg-s1 msreg-s2" "attreg:attreg-s1 attreg-s2" "featreg:featreg-s1 featreg-s2" \
            "attreg-label:attreg-label-s1 attreg-label-s2" "featreg-label:featreg-label-s1 featreg-label-s2" \
            "dvnet:dvnet-s1"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
  log "train: ${spec%%:*} starts"
  # shellcheck disable=SC2086
  lane "${spec%%:*}" ${spec#*:} &
done
wait
failed=0
if grep -qv " 0$" "$OUT/logs/lanes.txt"; then failed=1; fi

python - "$OUT/runs" > "$OUT/training.md" <<'EOF'
import json, sys
from pathlib import Path
print("| run | stop | epochs (planned) | samples | training s | samples/s | validation SRE start → best (mm) |")
print("|---|---|---|---|---|---|---|")
for d in sorted(Path(sys.argv[1]).iterdir()) if Path(sys.argv[1]).is_dir() else []:
    f = d / "summary.json"
    if not f.exists():
        print(f"| {d.name} | no summary (stopped or failed) | | | | | |")
        continue
    s = json.loads(f.read_text())
    t = float(s["train_seconds"])
    print(f"| {d.name} | {s['stop_reason']} | {s['epochs']} ({s.get('epochs_planned')}) | {s['samples']:,} | {t:.0f} "
          f"| {s['samples'] / max(t, 1e-9):.1f} | {s['val_sre_start']:.2f} → {s['best_val_sre']:.2f} |")
EOF
tee -a "$LOG" < "$OUT/training.md"

if ls "$OUT"/weights/*.safetensors >/dev/null 2>&1; then
  check=(--weights "$OUT/weights" --out "$OUT")
  if [ "$TINY" = 1 ]; then check+=(--data "$DATA/tiny-phantom" --starts 2 --repeats 1); fi
  log "check: scripts/check_device.py ${check[*]}"
  python scripts/check_device.py "${check[@]}" > "$OUT/logs/check_device.log" 2>&1
  rc=$?
  tail -n 20 "$OUT/logs/check_device.log" >> "$LOG"
  if [ "$rc" = 0 ]; then log "check: ok"; else log "check: FAILED (exit $rc, logs/check_device.log)"; failed=1; fi
else
  log "check: no weights were exported"; failed=1
fi
log "done: weights in $OUT/weights; figures in $OUT/training.md and $OUT/device_check.md"
exit "$failed"
