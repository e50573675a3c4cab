#!/usr/bin/env bash
# Land what scripts/gpu_run.sh brought back from a lent GPU: unpack the weights, evaluate each network against
# the CPU-trained (bundled) one on the validation split, and bundle only the ones that beat it.
#
#   bash scripts/gpu_land.sh FILES_DIR            # the device tool's files_at folder (weights.partNN, ...)
#   BUNDLE=0 bash scripts/gpu_land.sh FILES_DIR   # evaluate only; deep/weights stays as it is
#
# Steps: scripts/gpu_files.py unpack (checks each file's SHA-256) → runs/gpu/weights; record.tar.gz and log.txt
# → runs/gpu. Then, per network (cascade), `regkit compare -m cpu=NET,gpu=NET -O gpu.checkpoint=... --split val`
# on every validation set present (the built-in benchmark's, and runs/data/val-promise12 and
# runs/data/val-prostate-mr where scripts/make_training_data.sh has made them; VAL_DATA="builtin DIR ..." to
# choose), starts at 8 and 16 mm (both blocks of Table 1), K starts per case [5]. A network is bundled (its
# stage files, .json, model card .md and curve .png copied into deep/weights) when its mean final SRE, averaged
# over the validation sets, is lower than the bundled one's; a network with no bundled weights is bundled when
# it improves on the starting error. runs/gpu/landing.md lists the figures and the decisions.
# Then: run the tests that load the bundled weights, regenerate Table 2 on the test split
# (`regkit compare -m ... --split test`), and record both in BENCHMARKS.md.
set -euo pipefail
SRC=${1:?usage: bash scripts/gpu_land.sh FILES_DIR}
cd "$(dirname "$0")/.."
DEST=${DEST:-runs/gpu}
K=${K:-5}
BUNDLE=${BUNDLE:-1}
export REGKIT_NO_PROGRESS=1
mkdir -p "$DEST"
python scripts/gpu_files.py unpack "$SRC" "$DEST/weights"
[ -f "$SRC/record.tar.gz" ] && tar -xzf "$SRC/record.tar.gz" -C "$DEST"
[ -f "$SRC/log.txt" ] && cp "$SRC/log.txt" "$DEST/log.txt"
if [ -z "${VAL_DATA:-}" ]; then
  VAL_DATA=builtin
  for d in runs/data/val-promise12 runs/data/val-prostate-mr; do [ -f "$d/dataset.json" ] && VAL_DATA="$VAL_DATA $d"; done
fi
report=$DEST/landing.md
echo "| network | validation set | CPU-trained mean SRE (mm) | GPU-trained mean SRE (mm) | start (mm) |" > "$report"
echo "|---|---|---|---|---|" >> "$report"
for net in attreg attreg-label featreg featreg-label msreg dvnet; do
  [ -f "$DEST/weights/$net-stage1.safetensors" ] || { echo "== $net: not brought back"; continue; }
  opts=(-O "gpu.checkpoint=$DEST/weights/$net-stage1")
  [ -f "$DEST/weights/$net-stage2.safetensors" ] && opts+=(-O "gpu.stage2=$DEST/weights/$net-stage2")
  methods="gpu=$net"
  have_cpu=0
  if [ -f "deep/weights/$net-stage1.safetensors" ]; then methods="cpu=$net,$methods"; have_cpu=1; fi
  sums=()
  for data in $VAL_DATA; do
    out=$DEST/compare-$net-$(basename "$data")
    args=(compare -m "$methods" "${opts[@]}" --split val --init 8mm,16mm -k "$K" --seed 0 --out "$out")
    [ "$data" != builtin ] && args+=(--data "$data")
    echo "== regkit ${args[*]}"
    regkit "${args[@]}" > "$out.log" 2>&1 || { echo "compare failed: $out.log"; tail -5 "$out.log"; exit 1; }
    sums+=("$out/summary.csv")
  done
  verdict=$(python - "$net" "$have_cpu" "${sums[@]}" <<'EOF'
import sys
import pandas as pd
net, have_cpu, files = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
rows, means = [], {"cpu": [], "gpu": [], "start": []}
for f in files:
    s = pd.read_csv(f)
    top = s[~s["method"].str.contains("@")]  # the whole cascade, not its stage rows
    by = top.groupby("method")["mean"].mean()
    start = float(top["initial_mean"].mean())
    cpu = float(by["cpu"]) if "cpu" in by else float("nan")
    means["cpu"].append(cpu); means["gpu"].append(float(by["gpu"])); means["start"].append(start)
    name = f.split("/")[-2].removeprefix(f"compare-{net}-")
    print(f"| {net} | {name} | {cpu:.2f} | {float(by['gpu']):.2f} | {start:.2f} |", file=sys.stderr)
gpu, start = sum(means["gpu"]) / len(files), sum(means["start"]) / len(files)
cpu = sum(means["cpu"]) / len(files) if have_cpu else None
win = gpu < cpu if have_cpu else gpu < start
print(f"{'bundle' if win else 'keep'} gpu {gpu:.3f} cpu {cpu if cpu is None else round(cpu, 3)} start {start:.3f}")
EOF
  2>> "$report")
  echo "== $net: $verdict"
  echo "| **$net** | mean over the sets: $verdict | | | |" >> "$report"
  if [ "$BUNDLE" = 1 ] && [[ "$verdict" == bundle* ]]; then
    cp "$DEST/weights/$net"-stage*.* deep/weights/
    echo "   bundled: $(ls "$DEST/weights/$net"-stage*.* | xargs -n1 basename | tr '\n' ' ')"
  fi
done
cat "$report"
