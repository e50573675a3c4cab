#!/usr/bin/env bash
# Render the deep registrars' training and validation data (resumable: run it again to finish).
#
#   bash scripts/make_training_data.sh               # into runs/data (DATA=... to change)
#
# Training (all in the train split):
#   rand-phantom     the phantom, randomised (regkit synth --randomise): random anatomy and shape deformation,
#                    per-tissue contrasts drawn afresh for each modality, wide MR and TRUS physics
#   rand-promise12   real anatomy: 30 of the 35 PROMISE12 MRs, randomised (gland volume, deformation, MR
#                    contrast, TRUS physics), one variant each
#   promise12        the same 30 MRs through the unrandomised --from-mr simulator, one each
#   (and the built-in benchmark's 64 training cases, passed to regkit train as --data builtin, or as the
#   folder train-builtin)
# Validation (all in the val split; the best checkpoint is chosen on the mean over every validation start):
#   val-promise12    the 5 held-out PROMISE12 MRs (one or two per site), unrandomised --from-mr
#   val-prostate-mr  the 3 MRs of ../shared/data/prostate_mr (never trained on), unrandomised, 2 each
#   (and the built-in benchmark's 8 validation cases; the folder val-builtin holds them alone)
# Test on real anatomy (never used in training or model selection):
#   test-prostate-mr the same 3 MRs, other TRUS simulations (another seed), 2 each
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/data}
SHARED=${SHARED:-../shared/data}
JOBS=${JOBS:-2}
P12=$SHARED/prostate_mr_promise12
HELD_OUT="promise12_case07 promise12_case20 promise12_case32 promise12_case41 promise12_case49"

mkdir -p "$DATA/mr-promise12-train" "$DATA/mr-promise12-val"
for img in "$P12"/promise12_case*_t2.nii.gz; do
  case=$(basename "$img" _t2.nii.gz)
  dest=$DATA/mr-promise12-train
  [[ " $HELD_OUT " == *" $case "* ]] && dest=$DATA/mr-promise12-val
  for f in "$img" "$P12/${case}_gland.nii.gz"; do
    ln -sfn "$(realpath "$f")" "$dest/$(basename "$f")"
  done
done

synth() { echo "== regkit synth $*"; regkit synth --workers "$JOBS" "$@"; }
synth --out "$DATA/val-prostate-mr" --from-mr "$SHARED/prostate_mr" --cases 6 --seed 15 --split-sizes 0,6,0
synth --out "$DATA/val-promise12" --from-mr "$DATA/mr-promise12-val" --cases 5 --seed 14 --split-sizes 0,5,0
synth --out "$DATA/test-prostate-mr" --from-mr "$SHARED/prostate_mr" --cases 6 --seed 2021 --split-sizes 0,0,6
echo "== the built-in benchmark's training and validation splits (cached for every regkit command)"
python -c "from regkit.benchmark import builtin_benchmark; builtin_benchmark(('train', 'val'), workers=$JOBS)"
# the same two splits as folders of their own (links into the cache): with them a pool can hold the built-in
# validation cases without its training cases, with the validation starts of a pool that holds both (round v7)
python - "$DATA" <<'PY'
import json, sys
from pathlib import Path
from regkit.benchmark import benchmark_path, benchmark_splits
cache, data, splits = benchmark_path(), Path(sys.argv[1]), benchmark_splits()
manifest = json.loads((cache / "dataset.json").read_text())
for split in ("train", "val"):
    out = data / f"{split}-builtin"
    out.mkdir(parents=True, exist_ok=True)
    for cid in splits[split]:
        link = out / cid
        if not link.is_symlink():
            link.symlink_to(cache / cid)
    manifest.update(name=f"{split}-builtin", splits={split: splits[split]})
    (out / "dataset.json").write_text(json.dumps(manifest, indent=2))
PY
synth --out "$DATA/promise12" --from-mr "$DATA/mr-promise12-train" --cases 30 --seed 13 --split-sizes 30,0,0
synth --out "$DATA/rand-promise12" --from-mr "$DATA/mr-promise12-train" --cases 30 --seed 12 --split-sizes 30,0,0 \
      --randomise
synth --out "$DATA/rand-phantom" --cases 30 --seed 11 --split-sizes 30,0,0 --randomise
