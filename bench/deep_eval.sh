#!/usr/bin/env bash
# The deep registrars against no registration and the iterative methods, with case-level paired tests, on the
# built-in test split (8 mm and 0-20 mm starts) and on real anatomy (the --from-mr cases of the three MRs of
# ../shared/data/prostate_mr that training never sees: runs/data/test-prostate-mr, scripts/make_training_data.sh).
#
#   bash bench/deep_eval.sh                        # into runs/eval (OUT=... to change); resumable
#   CANDS="new=runs/candidates" bash bench/deep_eval.sh   # candidate weights beside the bundled ones
#
# DEEP lists the deep methods to run (default: every deep method with bundled stage-1 weights). CANDS="TAG=DIR ..."
# adds each of them again with the weights in DIR (<method>-stage1 and, where present, -stage2), as rows
# "<method>-TAG", on the same cases and starts; OLD=DIR is the same as CANDS="old=DIR" (e.g. the weights they replace).
# K starts per case on real anatomy [5]; the built-in test split takes compare's default (3).
# CLASSICAL=0 leaves mi and mind out; on real anatomy they also run with their general recipes (mi-general,
# mind-general: what they choose for a moving image that is not ultrasound; their default, preset=auto, takes the
# ultrasound recipes here). CHAINS lists deep-then-iterative rows ("deep + iterative": the network's result as
# the iterative method's start) for the 8 mm runs [attreg+mi,attreg+mind with CLASSICAL=1; CHAINS= for none].
# The comparisons: the paper's claims present, attention against none stage
# for stage, label against image, stage 2 against stage 1, deep against iterative and against no registration.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/eval}
DATA=${DATA:-runs/data}
K=${K:-5}
if [ -z "${DEEP:-}" ]; then
  DEEP=$(python - <<'PY'
from pathlib import Path
from regkit.deep.methods import METHODS
print(",".join(m.name for m in METHODS
               if m.weights and Path(f"{m.weights[0]}.safetensors").exists()))
PY
)
fi
methods=identity
[ "${CLASSICAL:-1}" = 1 ] && methods+=",mi,mind"
methods+=",$DEEP"
if [ "${CLASSICAL:-1}" = 1 ]; then CHAINS=${CHAINS-attreg+mi,attreg+mind}; else CHAINS=${CHAINS:-}; fi
opts=()
CANDS="${CANDS:-}${OLD:+ old=$OLD}"
IFS=, read -ra deep <<< "$DEEP"
for cand in $CANDS; do
  tag=${cand%%=*} dir=${cand#*=}
  for m in "${deep[@]}"; do
    [ -f "$dir/$m-stage1.safetensors" ] || continue
    methods+=",$m-$tag=$m"
    opts+=(-O "$m-$tag.checkpoint=$dir/$m-stage1")
    if [ -f "$dir/$m-stage2.safetensors" ]; then opts+=(-O "$m-$tag.stage2=$dir/$m-stage2"); fi
  done
done
comparisons() {  # the comparisons whose methods are all in the --methods list $1
  local cmp="reference,paper" pair a b
  has() { [[ ",$1," == *",$2,"* || ",$1," == *",$2="* ]]; }
  for pair in attreg@1:featreg@1 attreg:featreg attreg-label:attreg featreg-label:featreg attreg@2:attreg@1 \
              featreg@2:featreg@1 attreg:mi attreg:mind attreg+mi:mi attreg+mi:attreg \
              attreg+mind:mind attreg+mind:attreg; do
    a=${pair%%:*}; b=${pair##*:}
    if has "$1" "${a%@*}" && has "$1" "${b%@*}"; then cmp+=",$pair"; fi
  done
  for cand in $CANDS; do  # each candidate against the bundled network, cascade and stage 1
    for m in "${deep[@]}"; do
      if has "$1" "$m-${cand%%=*}"; then cmp+=",$m-${cand%%=*}:$m,$m-${cand%%=*}@1:$m@1"; fi
    done
  done
  echo "$cmp"
}

run() { echo "== regkit compare $*"; regkit compare "$@"; }
if [ -f "$DATA/test-prostate-mr/dataset.json" ]; then
  real=$methods${CHAINS:+,$CHAINS} ropts=("${opts[@]}")
  if [ "${CLASSICAL:-1}" = 1 ]; then
    real+=",mi-general=mi,mind-general=mind"
    ropts+=(-O mi-general.preset=general -O mind-general.preset=general)
  fi
  run --data "$DATA/test-prostate-mr" --methods "$real" --init 8mm -k "$K" --compare "$(comparisons "$real")" \
      -o "$OUT/real-anatomy-8mm" "${ropts[@]}"
else
  echo "no $DATA/test-prostate-mr: run scripts/make_training_data.sh for the real-anatomy rows" >&2
fi
eight=$methods${CHAINS:+,$CHAINS}
run --methods "$eight" --init 8mm --compare "$(comparisons "$eight")" -o "$OUT/builtin-8mm" "${opts[@]}"
no_classical=${methods/,mi,mind/}
run --methods "$no_classical" --init 0-20mm --compare "$(comparisons "$no_classical")" -o "$OUT/builtin-0-20mm" "${opts[@]}"
