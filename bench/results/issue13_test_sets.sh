# Sourced by issue 13's evaluation scripts: one test set of the three, as every round since v7 ran it.
#   compare_test_set SET METHODS COMPARE OUT [-O ...]
# SET: real-anatomy-8mm (the three prostate_mr MRs, runs/data/test-prostate-mr, 5 starts a case), builtin-8mm or
# builtin-0-20mm (the built-in benchmark's test split); results in OUT/SET, one classical worker.
compare_test_set() {
  local set=$1 methods=$2 comparisons=$3 out=$4
  shift 4
  local extra=() init=8mm
  [ "$set" = real-anatomy-8mm ] && extra=(--data runs/data/test-prostate-mr -k 5)
  [[ $set == *0-20mm ]] && init=0-20mm
  echo "== $set"
  REGKIT_NO_PROGRESS=1 regkit compare "${extra[@]}" --methods "$methods" --init "$init" --compare "$comparisons" \
    -j 1 -o "$out/$set" "$@"
}
