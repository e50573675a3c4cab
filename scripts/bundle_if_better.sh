#!/usr/bin/env bash
# Evaluate newly trained weights (e.g. scripts/train_all.sh's OUT/weights) against the bundled ones on the
# validation sets, and bundle only the networks that beat them.
#
#   bash scripts/bundle_if_better.sh WEIGHTS_DIR            # WEIGHTS_DIR holds <network>-stage<k>.safetensors
#   BUNDLE=0 bash scripts/bundle_if_better.sh WEIGHTS_DIR   # evaluate only; deep/weights stays as it is
#
# Per network (cascade): `regkit compare -m bundled=NET,new=NET -O new.checkpoint=... --split val` on every
# validation set present (the built-in benchmark's, and runs/data/val-promise12 and runs/data/val-prostate-mr where
# scripts/make_training_data.sh has made them; VAL_DATA="builtin DIR ..." to choose), starts at 8 and 16 mm, K starts
# per case [5]. A network is bundled (its stage files, .json, model card .md and curve .png copied into deep/weights)
# when its mean final SRE, averaged over the validation sets, is lower than the bundled one's by more than MARGIN mm
# [0.1: bench/results/training_validation_noise.txt]; a network with no bundled weights is bundled when it improves on the starting error. DEST/landing.md
# [runs/landing] lists the figures and the decisions. Then run the tests that load the bundled weights, remake the
# deep Table 2 (bash bench/deep_eval.sh) and record both in BENCHMARKS.md.
set -euo pipefail
WEIGHTS=$(realpath "${1:?usage: bash scripts/bundle_if_better.sh WEIGHTS_DIR}")
cd "$(dirname "$0")/.."
DEST=${DEST:-runs/landing}
MARGIN=${MARGIN:-0.1}
K=${K:-5}
BUNDLE=${BUNDLE:-1}
export REGKIT_NO_PROGRESS=1
mkdir -p "$DEST"
if [ -z "${VAL_DATA:-}" ]; then
  VAL_DATA=builtin
  for d in runs/data/val-promise12 runs/data/val-prostate-mr; do [ -f "$d/dataset.json" ] && VAL_DATA="$VAL_DATA $d"; done
fi
report=$DEST/landing.md
echo "| network | validation set | bundled mean SRE (mm) | new mean SRE (mm) | start (mm) |" > "$report"
echo "|---|---|---|---|---|" >> "$report"
for net in attreg attreg-label featreg featreg-label msreg dvnet; do
  [ -f "$WEIGHTS/$net-stage1.safetensors" ] || { echo "== $net: not in $WEIGHTS"; continue; }
  opts=(-O "new.checkpoint=$WEIGHTS/$net-stage1")
  [ -f "$WEIGHTS/$net-stage2.safetensors" ] && opts+=(-O "new.stage2=$WEIGHTS/$net-stage2")
  methods="new=$net"
  have_cpu=0
  if [ -f "deep/weights/$net-stage1.safetensors" ]; then methods="bundled=$net,$methods"; have_cpu=1; fi
  sums=()
  for data in $VAL_DATA; do
    out=$DEST/compare-$net-$(basename "$data")
    args=(compare -m "$methods" "${opts[@]}" --split val --init 8mm,16mm -k "$K" --seed 0 --out "$out")
    [ "$data" != builtin ] && args+=(--data "$data")
    echo "== regkit ${args[*]}"
    regkit "${args[@]}" > "$out.log" 2>&1 || { echo "compare failed: $out.log"; tail -5 "$out.log"; exit 1; }
    sums+=("$out/summary.csv")
  done
  verdict=$(python - "$net" "$have_cpu" "$MARGIN" "${sums[@]}" <<'EOF'
import sys
import pandas as pd
net, have_cpu, margin, files = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), sys.argv[4:]
rows, means = [], {"bundled": [], "new": [], "start": []}
for f in files:
    s = pd.read_csv(f)
    top = s[~s["method"].str.contains("@")]  # the whole cascade, not its stage rows
    by = top.groupby("method")["mean"].mean()
    start = float(top["initial_mean"].mean())
    bundled = float(by["bundled"]) if "bundled" in by else float("nan")
    means["bundled"].append(bundled); means["new"].append(float(by["new"])); means["start"].append(start)
    name = f.split("/")[-2].removeprefix(f"compare-{net}-")
    print(f"| {net} | {name} | {bundled:.2f} | {float(by['new']):.2f} | {start:.2f} |", file=sys.stderr)
new, start = sum(means["new"]) / len(files), sum(means["start"]) / len(files)
bundled = sum(means["bundled"]) / len(files) if have_cpu else None
win = new < bundled - margin if have_cpu else new < start
print(f"{'bundle' if win else 'keep'} new {new:.3f} bundled {bundled if bundled is None else round(bundled, 3)} start {start:.3f}")
EOF
  2>> "$report")
  echo "== $net: $verdict"
  echo "| **$net** | mean over the sets: $verdict | | | |" >> "$report"
  if [ "$BUNDLE" = 1 ] && [[ "$verdict" == bundle* ]]; then
    cp "$WEIGHTS/$net"-stage*.* deep/weights/
    echo "   bundled: $(ls "$WEIGHTS/$net"-stage*.* | xargs -n1 basename | tr '\n' ' ')"
  fi
done
cat "$report"
