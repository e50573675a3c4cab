#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what scripts/gpu_run.sh needs on a lent GPU machine that this one's
# working tree does not hold, within the 64 MiB that may travel there (the tracked files count too):
#
#   .gpu/simpleitk.tar.xz   SimpleITK, installed files (the machine has no SimpleITK and no registry; the
#                           manylinux wheel is 50 MiB, its package repacked with xz about 27 MiB; cp311-abi3, so
#                           it imports under the machine's Python 3.12)
#   .gpu/mr.tar.xz          real labelled MRs as .nii, xz-packed (a fifth smaller than .nii.gz):
#                           prostate_mr (3 MRs: validation only) and PROMISE12: the 5 held-out validation MRs,
#                           then as many of the 30 training MRs as the space left allows (in case order)
#
#   bash scripts/gpu_pack.sh            # WHEEL=path/to/simpleitk-*.whl  SHARED=../shared/data  MARGIN_MIB=1.5
#
# It prints the sizes: the tracked tree, each packed file and what is left of the 64 MiB. Run it again after
# the tree grows (new bundled weights leave less room for PROMISE12).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
MARGIN_MIB=${MARGIN_MIB:-1.5}
LIMIT=$((64 * 1024 * 1024))
HELD_OUT="promise12_case07 promise12_case20 promise12_case32 promise12_case41 promise12_case49"
mkdir -p .gpu
mib() { python3 -c "print(f'{$1 / 2**20:.1f} MiB')"; }

if [ ! -f .gpu/simpleitk.tar.xz ]; then
  ver=$(python3 -c "import SimpleITK; print(SimpleITK.__version__)")
  WHEEL=${WHEEL:-$(ls /tmp/sitkwhl/simpleitk-"$ver"-cp311-abi3-*manylinux*x86_64*.whl 2>/dev/null | head -1)}
  if [ -z "$WHEEL" ] || [ ! -f "$WHEEL" ]; then
    mkdir -p .gpu/wheel
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheel "SimpleITK==$ver"
    WHEEL=$(ls .gpu/wheel/*.whl | head -1)
  fi
  echo "== SimpleITK $ver from $WHEEL (xz -9e of 270 MB: several minutes)"
  tmp=$(mktemp -d)
  python3 -m zipfile -e "$WHEEL" "$tmp"
  (cd "$tmp" && tar -cf - SimpleITK simpleitk-*.dist-info | nice -n 5 xz -T1 -9e) > .gpu/simpleitk.tar.xz.tmp
  mv .gpu/simpleitk.tar.xz.tmp .gpu/simpleitk.tar.xz
  rm -rf "$tmp" .gpu/wheel
fi

tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
sitk=$(stat -c %s .gpu/simpleitk.tar.xz)
room=$(python3 -c "print(int($LIMIT - $tracked - $untracked - $sitk - $MARGIN_MIB * 2**20))")
echo "tracked $(mib "$tracked"), untracked $(mib "$untracked"), simpleitk.tar.xz $(mib "$sitk"); room for MRs $(mib "$room")"

stage=$(mktemp -d)
mkdir -p "$stage/prostate_mr" "$stage/promise12-val" "$stage/promise12-train"
nii() { zcat "$1" > "$2/$(basename "$1" .gz)"; }
for f in "$SHARED"/prostate_mr/*.nii.gz; do nii "$f" "$stage/prostate_mr"; done
for c in $HELD_OUT; do for t in t2 gland; do nii "$SHARED/prostate_mr_promise12/${c}_$t.nii.gz" "$stage/promise12-val"; done; done
xzsize() { tar -C "$stage" -cf - . | nice -n 5 xz -T1 -6 | wc -c; }
used=$(xzsize)
# each training MR adds about its .nii.gz size × 0.82 packed; add them in case order while they fit
kept=0
for img in "$SHARED"/prostate_mr_promise12/promise12_case*_t2.nii.gz; do
  c=$(basename "$img" _t2.nii.gz)
  [[ " $HELD_OUT " == *" $c "* ]] && continue
  add=$(( ( $(stat -c %s "$img") + $(stat -c %s "$SHARED/prostate_mr_promise12/${c}_gland.nii.gz") ) * 84 / 100 ))
  if [ $((used + add)) -gt "$room" ]; then break; fi
  for t in t2 gland; do nii "$SHARED/prostate_mr_promise12/${c}_$t.nii.gz" "$stage/promise12-train"; done
  used=$((used + add)); kept=$((kept + 1))
done
while :; do  # the estimate above can miss: drop the last training MR until the packed file fits
  tar -C "$stage" -cf - . | nice -n 5 xz -T1 -6 > .gpu/mr.tar.xz
  mr=$(stat -c %s .gpu/mr.tar.xz)
  total=$((tracked + untracked + sitk + mr))
  if [ "$total" -le "$LIMIT" ] || [ "$kept" = 0 ]; then break; fi
  last=$(ls "$stage/promise12-train"/*_t2.nii | tail -1)
  rm -f "$last" "${last%_t2.nii}_gland.nii"
  kept=$((kept - 1))
done
rm -rf "$stage"
echo "mr.tar.xz $(mib "$mr"): prostate_mr 3, PROMISE12 validation 5, PROMISE12 training $kept of 30"
echo "travels: $(mib "$total") of 64 MiB (tracked $(mib "$tracked") + simpleitk $(mib "$sitk") + MRs $(mib "$mr"))"
if [ "$total" -gt "$LIMIT" ]; then echo "over the 64 MiB limit even without training MRs" >&2; exit 1; fi
