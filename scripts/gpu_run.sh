#!/usr/bin/env bash
# Train every network on one lent GPU in a single device command (about 8 minutes), check CUDA against the CPU,
# time inference, and leave fp16 weights, model cards and a log in OUT (issue 16).
#
#   bash scripts/gpu_pack.sh                   # here, once: fills .gpu/ (ignored by git) within the 64 MiB
#   run(command="bash scripts/gpu_run.sh $OUT", carry=[".gpu"], timeout_s=560)     # the device tool
#   bash scripts/gpu_land.sh FILES_DIR         # here: unpack, evaluate on the validation split, bundle winners
#
#   run(command="TOTAL=230 RENDER_S=50 LOAD_S=25 bash scripts/gpu_run.sh $OUT", ...)  # a short second try
#   TINY=1 bash scripts/gpu_run.sh /tmp/gpu-out    # the same path on this CPU at a tiny scale (8-12 min here)
#
# What travels (64 MiB in all, the tracked tree included; gpu_pack.sh prints the sums): the tree (about 14 MiB
# with 5 bundled weights; each bundled network adds 2.5 MB, DVNet 10.5, MSReg 43), .gpu/simpleitk.tar.xz
# (SimpleITK 2.5.7 cp311-abi3, 50 MiB as a wheel, about 27 MiB repacked with xz: the machine has no SimpleITK
# and no registry) and .gpu/mr.tar.xz (the real labelled MRs as xz-packed .nii: prostate_mr (validation only),
# the 5 held-out PROMISE12 MRs and as many of the 30 PROMISE12 training MRs as the room left allows; all of
# PROMISE12 is 48 MB and does not fit beside SimpleITK). Pre-rendered training cases do not fit either (1.2 to
# 1.9 MB per case as .nii.gz), so the data are rendered there, with the machine's 16 cores:
#
#   phase      seconds from the start (TOTAL=465)      what
#   setup      ~15    unpack SimpleITK (PYTHONPATH), pip install -e . (no network, no build isolation; where
#                     that cannot build, regkit is mapped by a symlink tree with its entry points)
#   data       ~110   in parallel: the built-in benchmark (val, then train), val-prostate-mr (6), val-promise12
#                     (5), and, stopped at RENDER_S (the cases finished by then are kept): rand-phantom
#                     (randomised phantom, up to 96), rand-promise12 (4 randomised variants per carried training
#                     MR), promise12 (1 unrandomised per carried training MR)
#   train      to TOTAL-RESERVE   six lanes at once on the one GPU, one process each (the GPU holds every
#                     case's volumes and resamples them there; the 16 cores draw the starts for six processes):
#                     attreg, attreg-label, featreg, featreg-label, msreg (two stages each), dvnet (one stage).
#                     The paper's recipe (each network's declared batch size, learning rate and schedule, one
#                     sample per training case per epoch, up to 300 epochs, 0-20 mm then 0-8 mm starts), bf16
#                     autocast, augmentation, 3 validation starts per validation case every VAL_EVERY epochs.
#                     Time plan: what is left after the data, less LOAD_S per stage for loading, split 62/38
#                     between stage 1 and stage 2 (DVNet gets both); --fit-epochs fits the epochs to each
#                     budget after the first steps, so the learning-rate schedule completes
#   pack       ~10    weights (fp16 safetensors, model cards with device, epochs, samples, wall time, curve
#                     PNGs) → OUT/weights.partNN (scripts/gpu_files.py: xz, at most 62.5 MiB, 15.9 MiB a part)
#   check      ~60    scripts/gpu_check.py on the new weights: CUDA against CPU in float32 with TF32 off
#                     (tolerance 1e-3 mm/degrees), inference ms per stage (batch 1 and the training batch) and
#                     per sample (whole cascade)
#   record     ~5     OUT/record.tar.gz: every run's history, summary, options, lane logs, dataset manifests,
#                     gpu_check.{md,json}, training.md (samples/s per network), nvidia-smi dmon; OUT/log.txt
#
# At most 8 files of 16 MiB come back: weights.part01..04, record.tar.gz, log.txt. A failure in one lane or
# phase is written to the log and status.txt and the others go on; the weights are packed before the check
# runs, so a check that overruns loses nothing. Lanes, data and check each have a hard `timeout`.
#
# Environment: TOTAL, RENDER_S, LOAD_S, RESERVE (seconds), VAL_EVERY, PARALLEL (lanes at once), WORK
# (scratch, default /tmp/regkit-gpu; emptied first), LANE_GRACE (seconds a lane may overrun the plan before it
# is killed), TINY=1 (CPU, batch 2, a few cases, a few seconds per stage).
set -uo pipefail
OUT=${1:?usage: bash scripts/gpu_run.sh OUT}
cd "$(dirname "$0")/.."
REPO=$PWD
mkdir -p "$OUT" && OUT=$(realpath "$OUT")
TINY=${TINY:-0}
WORK=${WORK:-/tmp/regkit-gpu}
case "$WORK" in *regkit-gpu*) rm -rf "$WORK" ;; *) echo "WORK must name a regkit-gpu folder" >&2; exit 2 ;; esac
mkdir -p "$WORK/logs" "$WORK/check" "$WORK/weights"
T0=$(date +%s)
LOG=$OUT/log.txt
STATUS=$WORK/status.txt
: > "$LOG"; : > "$STATUS"
el() { echo $(( $(date +%s) - T0 )); }
log() { printf '[%s +%3ss] %s\n' "$(date -u +%H:%M:%S)" "$(el)" "$*" | tee -a "$LOG"; }
status() { echo "$*" >> "$STATUS"; log "status: $*"; }
export PYTHONUNBUFFERED=1 REGKIT_NO_PROGRESS=1 OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
export REGKIT_CACHE=$WORK/cache

if [ "$TINY" = 1 ]; then
  TOTAL=${TOTAL:-240}; RENDER_S=${RENDER_S:-60}; LOAD_S=${LOAD_S:-20}; RESERVE=${RESERVE:-70}
  VAL_EVERY=${VAL_EVERY:-1}; PARALLEL=${PARALLEL:-3}; DEVICE=cpu; W=1
  EXTRA="--device cpu --threads 1 --batch-size 2"; HOST="TINY test run on a shared 2-core VM (not for use)"
  LANE_GRACE=${LANE_GRACE:-900}; CHECK_MIN=${CHECK_MIN:-900}  # CPU steps outlast tiny budgets: let all finish
else
  TOTAL=${TOTAL:-465}; RENDER_S=${RENDER_S:-110}; LOAD_S=${LOAD_S:-35}; RESERVE=${RESERVE:-80}
  VAL_EVERY=${VAL_EVERY:-4}; PARALLEL=${PARALLEL:-6}; DEVICE=cuda; W=4
  EXTRA="--device cuda --bf16 --threads 2"; LANE_GRACE=${LANE_GRACE:-30}; CHECK_MIN=${CHECK_MIN:-30}
  HOST="one NVIDIA H200 (lent, 16 cores); six networks trained at once on it, time plan of scripts/gpu_run.sh"
fi

DMON=""
finish() {
  local rc=$?
  [ -n "$DMON" ] && kill "$DMON" 2>/dev/null
  if [ ! -f "$OUT/weights.part01" ] && [ -n "$(ls -A "$WORK/weights" 2>/dev/null)" ]; then
    python3 scripts/gpu_files.py pack "$WORK/weights" "$OUT" >> "$LOG" 2>&1 || status "pack: failed"
  fi
  cp "$STATUS" "$WORK/check/status.txt" 2>/dev/null
  for d in "$WORK"/data/*/; do [ -f "$d/dataset.json" ] && mkdir -p "$WORK/record/data/$(basename "$d")" \
    && cp "$d/dataset.json" "$WORK/record/data/$(basename "$d")/"; done 2>/dev/null
  tar -czf "$OUT/record.tar.gz" -C "$WORK" --exclude='*.safetensors' --exclude=tensorboard \
    runs logs check record 2>/dev/null
  log "done (exit $rc); files in OUT:"
  ls -l "$OUT" | tee -a "$LOG"
  local n big
  n=$(find "$OUT" -type f | wc -l); big=$(find "$OUT" -type f -size +16M | wc -l)
  if [ "$n" -gt 8 ] || [ "$big" -gt 0 ]; then log "WARNING: $n files, $big over 16 MiB (the limit: 8, 0)"; fi
  cat "$STATUS"
}
trap finish EXIT
trap 'exit 143' TERM INT

# ---------------------------------------------------------------------------------------------- setup
log "gpu_run: TINY=$TINY TOTAL=${TOTAL}s RENDER_S=${RENDER_S}s LOAD_S=${LOAD_S}s RESERVE=${RESERVE}s WORK=$WORK"
log "host: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"; fi
if ! python3 -c "import SimpleITK" 2>/dev/null; then
  if [ ! -f .gpu/simpleitk.tar.xz ]; then status "setup: FAILED: no SimpleITK and no .gpu/simpleitk.tar.xz (run scripts/gpu_pack.sh here, carry .gpu)"; exit 1; fi
  mkdir -p "$WORK/site" && tar -C "$WORK/site" -xJf .gpu/simpleitk.tar.xz
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
install_without_pip() {  # no usable pip build here: a symlink tree with regkit's package-dir mapping, its entry
  # points (the registry finds the methods through them) and a `regkit` command
  local site=$WORK/site
  mkdir -p "$site/regkit" "$WORK/bin" "$site/regkit-0.1.0.dist-info"
  for f in "$REPO"/regkit/*; do ln -sfn "$f" "$site/regkit/"; done
  for d in baselines deep evaluation; do ln -sfn "$REPO/$d" "$site/regkit/$d"; done
  printf 'Metadata-Version: 2.1\nName: regkit\nVersion: 0.1.0\n' > "$site/regkit-0.1.0.dist-info/METADATA"
  python3 - "$REPO/pyproject.toml" > "$site/regkit-0.1.0.dist-info/entry_points.txt" <<'EOF'
import sys
import tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for group, entries in {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}.items():
    print(f"[{group}]")
    for name, target in entries.items():
        print(f"{name} = {target}")
EOF
  printf '#!/bin/sh\nexec python3 -c "import sys; from regkit.app.cli import main; sys.argv[0] = \\"regkit\\"; sys.exit(main())" "$@"\n' \
    > "$WORK/bin/regkit"
  chmod +x "$WORK/bin/regkit"
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PATH=$WORK/bin:$PATH
}
PYBIN=$(dirname "$(python3 -c 'import sys; print(sys.executable)')")
export PATH=$PYBIN:$PATH
installed() {  # this tree's regkit, found from outside it (its package-dir mapping and entry points), and `regkit`
  (cd / && python3 -c "import os, sys, regkit.deep.training as t; from regkit.registry import available_registrars as a
sys.exit(not (os.path.realpath(t.__file__).startswith('$REPO/') and 'msreg' in a()))") 2>/dev/null \
    && command -v regkit >/dev/null
}
if ! installed; then
  log "setup: pip install -e . (no network, no dependencies; NO_PIP=1 skips it)"
  # an editable build needs setuptools >= 64 (and bdist_wheel) there; else regkit is mapped by symlinks
  if [ "${NO_PIP:-0}" = 1 ] || ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >> "$LOG" 2>&1
  then
    log "setup: no pip build; regkit from a symlink tree with its entry points"
    install_without_pip
  fi
fi
installed || { status "setup: FAILED: this tree's regkit does not import from outside it (see log.txt)"; exit 1; }
(cd / && python3 -c "import torch, SimpleITK, regkit; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'SimpleITK', SimpleITK.__version__, 'regkit', regkit.__file__)") 2>&1 | tee -a "$LOG"
if [ "$DEVICE" = cuda ] && ! python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  status "setup: FAILED: no CUDA device"; exit 1
fi
status "setup: ok"
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s um -d 5 > "$WORK/logs/nvidia-smi-dmon.txt" 2>&1 &
  DMON=$!
fi

# ---------------------------------------------------------------------------------------------- data
DATA=$WORK/data
MR=$WORK/mr
mkdir -p "$DATA" "$MR"
if [ -f .gpu/mr.tar.xz ]; then
  tar -C "$MR" -xJf .gpu/mr.tar.xz
else  # here: the shared data beside the checkout
  SHARED=${SHARED:-../shared/data}
  ln -s "$(realpath "$SHARED/prostate_mr")" "$MR/prostate_mr"
  mkdir -p "$MR/promise12-val" "$MR/promise12-train"
  for f in "$SHARED"/prostate_mr_promise12/promise12_case*.nii.gz; do
    case $(basename "$f") in promise12_case0[7]_*|promise12_case20_*|promise12_case32_*|promise12_case41_*|promise12_case49_*)
      ln -s "$(realpath "$f")" "$MR/promise12-val/" ;; *) ln -s "$(realpath "$f")" "$MR/promise12-train/" ;; esac
  done
fi
K=$(find "$MR/promise12-train" -name '*_t2.nii*' 2>/dev/null | wc -l)
log "data: real MRs: prostate_mr $(find "$MR/prostate_mr" -name '*_t2.nii*' | wc -l), PROMISE12 validation \
$(find "$MR/promise12-val" -name '*_t2.nii*' | wc -l), PROMISE12 training $K"
RENDER_END=$((T0 + RENDER_S))

synth() {  # name cap(1=stop at RENDER_END) split args...
  local name=$1 cap=$2 split=$3; shift 3
  local limit=$((RENDER_S * 2))
  [ "$cap" = 1 ] && limit=$((RENDER_END - $(date +%s)))
  if [ "$limit" -le 5 ]; then echo "$name: no time left" > "$WORK/logs/synth-$name.log"; return; fi
  timeout -s TERM -k 10 "$limit" regkit synth --out "$DATA/$name" "$@" > "$WORK/logs/synth-$name.log" 2>&1
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$DATA/$name" ]; then  # stopped at the cap: keep the finished cases (case.json last)
    python3 - "$DATA/$name" "$split" >> "$WORK/logs/synth-$name.log" 2>&1 <<'EOF'
import sys
from pathlib import Path
from regkit.dataset import write_manifest
root, split = Path(sys.argv[1]), sys.argv[2]
ids = sorted(p.name for p in root.iterdir() if (p / "case.json").exists())
if ids:
    write_manifest(root, {s: ids if s == split else [] for s in ("train", "val", "test")}, name=root.name,
                   source={"generator": "regkit synth, stopped at the render time cap", "cases": len(ids)})
print(f"kept {len(ids)} finished cases")
EOF
  fi
  echo "$name exit $rc" >> "$WORK/logs/synth-$name.log"
}

if [ "$TINY" = 1 ]; then
  BUILTIN=0
  synth tiny-phantom 0 train --cases 3 --seed 11 --split-sizes 2,1,0 --randomise --workers 1 &
  synth val-prostate-mr 0 val --from-mr "$MR/prostate_mr" --cases 1 --seed 15 --split-sizes 0,1,0 &
  synth rand-promise12 1 train --from-mr "$MR/promise12-train" --cases 1 --seed 12 --split-sizes 1,0,0 --randomise &
  wait
  CHECK_DATA=(--data "$DATA/tiny-phantom" --starts 2); REPEATS=1
else
  BUILTIN=1
  (timeout -k 10 $((RENDER_S * 2)) python3 -c "
from regkit.benchmark import builtin_benchmark
builtin_benchmark(('val',), workers=4, show_progress=False)
print('built-in val done', flush=True)
builtin_benchmark(('train', 'val'), workers=$W, show_progress=False)
print('built-in train done')" > "$WORK/logs/synth-builtin.log" 2>&1; echo "exit $?" >> "$WORK/logs/synth-builtin.log") &
  synth val-prostate-mr 0 val --from-mr "$MR/prostate_mr" --cases 6 --seed 15 --split-sizes 0,6,0 --workers 2 &
  synth val-promise12 0 val --from-mr "$MR/promise12-val" --cases 5 --seed 14 --split-sizes 0,5,0 --workers 2 &
  synth rand-phantom 1 train --cases 96 --seed 11 --split-sizes 96,0,0 --randomise --workers 4 &
  if [ "$K" -gt 0 ]; then
    synth rand-promise12 1 train --from-mr "$MR/promise12-train" --cases $((4 * K)) --seed 12 \
      --split-sizes $((4 * K)),0,0 --randomise --workers 4 &
    synth promise12 1 train --from-mr "$MR/promise12-train" --cases "$K" --seed 13 --split-sizes "$K",0,0 --workers 2 &
  fi
  wait
  CHECK_DATA=(); REPEATS=20
fi
DATASETS=""
for d in "$DATA"/*/; do
  d=$(basename "$d")
  if [ -f "$DATA/$d/dataset.json" ]; then DATASETS="$DATASETS $d"; fi
done
if [ "$BUILTIN" = 1 ] && ! python3 -c "
import json, sys; from regkit.benchmark import benchmark_path
s = json.loads((benchmark_path() / 'dataset.json').read_text())['splits']; sys.exit(not s.get('val'))" 2>/dev/null; then
  BUILTIN=0; status "data: the built-in benchmark did not render; trained without it"
fi
summary=$(python3 - "$DATA" "$BUILTIN" <<'EOF'
import json, sys
from pathlib import Path
parts = []
if sys.argv[2] == "1":
    from regkit.benchmark import benchmark_path
    s = json.loads((benchmark_path() / "dataset.json").read_text())["splits"]
    parts.append(f"builtin train {len(s.get('train', []))} val {len(s.get('val', []))}")
for m in sorted(Path(sys.argv[1]).glob("*/dataset.json")):
    s = json.loads(m.read_text())["splits"]
    parts.append(f"{m.parent.name} " + " ".join(f"{k} {len(v)}" for k, v in s.items() if v))
print("; ".join(parts))
EOF
)
log "data: $summary"
if [ -z "$DATASETS" ] && [ "$BUILTIN" = 0 ]; then status "data: FAILED: nothing rendered"; exit 1; fi
status "data: ok ($summary)"

# ---------------------------------------------------------------------------------------------- train
TRAIN_END=$((T0 + TOTAL - RESERVE))
WAVES=$(( (6 + PARALLEL - 1) / PARALLEL ))  # lanes run in waves of PARALLEL (one wave on the GPU)
avail=$(( (TRAIN_END - $(date +%s)) / WAVES - 2 * LOAD_S - 10 ))
S1=$(( avail * 62 / 100 )); S2=$(( avail - S1 ))
[ "$S1" -lt 5 ] && S1=5; [ "$S2" -lt 5 ] && S2=5
DV=$(( S1 + S2 + LOAD_S + 5 ))
log "train: time plan: stage 1 ${S1}s, stage 2 ${S2}s, DVNet ${DV}s (+${LOAD_S}s loading per stage), $WAVES wave(s) of \
$PARALLEL lanes; lanes end by +$((TRAIN_END - T0))s"
lane() {  # name runs...
  local name=$1; shift
  local cap=$(( TRAIN_END - $(date +%s) + LANE_GRACE ))
  RUNS=$WORK/runs DATA=$DATA DATASETS="$DATASETS" BUILTIN=$BUILTIN ONCE=1 FIT=1 VAL_EVERY=$VAL_EVERY \
    S1_EPOCHS=300 S1_SAMPLES=0 S2_EPOCHS=300 S2_SAMPLES=0 MSREG_S1_EPOCHS=300 MSREG_S1_SAMPLES=0 \
    MSREG_S2_EPOCHS=300 MSREG_S2_SAMPLES=0 S1_BUDGET=${S1}s S2_BUDGET=${S2}s DVNET_BUDGET=${DV}s \
    EXTRA="$EXTRA" WEIGHTS=$WORK/weights HOST="$HOST" ONLY="$*" \
    timeout -s TERM -k 20 "$cap" bash scripts/train_bundled_weights.sh > "$WORK/logs/lane-$name.log" 2>&1
  local rc=$?
  if [ "$rc" = 0 ]; then status "lane $name: ok"; else status "lane $name: FAILED (exit $rc; logs/lane-$name.log)"; fi
  grep -h "fit epochs\|^== .*done\|epochs, .* steps in\|Error\|error" "$WORK/logs/lane-$name.log" | sed "s/^/  $name: /" | tee -a "$LOG"
}
for spec in "msreg:msreg-s1 msreg-s2" "attreg:attreg-s1 attreg-s2" "featreg:featreg-s1 featreg-s2" \
            "attreg-label:attreg-label-s1 attreg-label-s2" "featreg-label:featreg-label-s1 featreg-label-s2" \
            "dvnet:dvnet-s1"; do
  while [ "$(jobs -rp | grep -vc "^${DMON:-x}$")" -ge "$PARALLEL" ]; do wait -n; done
  log "train: lane ${spec%%:*} starts"
  # shellcheck disable=SC2086
  lane "${spec%%:*}" ${spec#*:} &
done
for p in $(jobs -rp); do [ "$p" != "$DMON" ] && wait "$p"; done
log "train: lanes done; exported: $(cd "$WORK/weights" && ls ./*.safetensors 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"

python3 - "$WORK/runs" > "$WORK/check/training.md" <<'EOF'
import json, sys
from pathlib import Path
print("| run | stop | epochs (planned) | samples | training s | samples/s | val SRE start → best (mm) |")
print("|---|---|---|---|---|---|---|")
for d in sorted(Path(sys.argv[1]).iterdir()) if Path(sys.argv[1]).is_dir() else []:
    f = d / "summary.json"
    if not f.exists():
        print(f"| {d.name} | no summary (killed or failed) | | | | | |")
        continue
    s = json.loads(f.read_text())
    t = float(s["train_seconds"])
    print(f"| {d.name} | {s['stop_reason']} | {s['epochs']} ({s.get('epochs_planned')}) | {s['samples']:,} | {t:.0f} "
          f"| {s['samples'] / max(t, 1e-9):.1f} | {s['val_sre_start']:.2f} → {s['best_val_sre']:.2f} |")
EOF
tee -a "$LOG" < "$WORK/check/training.md"

# ---------------------------------------------------------------------------------------------- pack weights
if [ -n "$(ls -A "$WORK/weights")" ]; then
  if python3 scripts/gpu_files.py pack "$WORK/weights" "$OUT" 2>&1 | tee -a "$LOG"; then status "pack: ok"
  else status "pack: FAILED"; fi
else
  status "pack: no weights were exported"
fi

# ---------------------------------------------------------------------------------------------- check
WCHECK=$WORK/weights
[ -z "$(ls "$WCHECK"/*.safetensors 2>/dev/null)" ] && WCHECK=deep/weights && log "check: no new weights; checking the bundled ones"
left=$(( T0 + TOTAL + 30 - $(date +%s) )); [ "$left" -lt "$CHECK_MIN" ] && left=$CHECK_MIN
log "check: scripts/gpu_check.py --weights $WCHECK (at most ${left}s)"
timeout -s TERM -k 10 "$left" python3 scripts/gpu_check.py --weights "$WCHECK" --out "$WORK/check" \
  "${CHECK_DATA[@]}" --repeats "$REPEATS" > "$WORK/logs/gpu_check.log" 2>&1
rc=$?
tail -n 30 "$WORK/logs/gpu_check.log" >> "$LOG"
case $rc in
  0) status "check: ok (CUDA and CPU agree within the tolerance)" ;;
  1) status "check: FAILED: a CUDA-CPU difference over the tolerance (gpu_check.md)" ;;
  *) status "check: FAILED (exit $rc; logs/gpu_check.log)" ;;
esac
[ -f "$WORK/check/gpu_check.md" ] && cat "$WORK/check/gpu_check.md"
exit 0
