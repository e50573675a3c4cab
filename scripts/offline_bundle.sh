#!/usr/bin/env bash
# Pack what a machine without network access needs to train every network (scripts/train_all.sh): regkit as a
# wheel with the wheels of its dependencies, this tree's scripts, and the rendered training data.
#
#   bash scripts/offline_bundle.sh DEST        # here, with network access and the data rendered
#
# DEST then holds:
#   wheels/            regkit's wheel and (unless NO_DEPS=1) its dependencies' wheels, downloaded for the target:
#                      PYTHON_VERSION [this Python's] and PLATFORM [manylinux2014_x86_64]; torch is left out when
#                      SKIP_TORCH=1 (the target usually has its own CUDA build of torch)
#   regkit-src.tar.gz  this commit's tree (`git archive HEAD`: scripts/, bench/, the tests)
#   data.tar           runs/data (links resolved) and the built-in benchmark's cache (runs/cache), rendered here by
#                      scripts/make_training_data.sh (run first when runs/data is missing)
#   RUN.txt            the commands to run there:
#
#     mkdir regkit && tar -xzf regkit-src.tar.gz -C regkit && cd regkit
#     pip install --no-index --find-links ../wheels regkit
#     tar -xf ../data.tar
#     REGKIT_CACHE=$PWD/runs/cache bash scripts/train_all.sh --device cuda runs/gpu
#
# and bring back runs/gpu (weights/, training.md, device_check.md, log.txt).
set -euo pipefail
DEST=${1:?usage: bash scripts/offline_bundle.sh DEST}
cd "$(dirname "$0")/.."
mkdir -p "$DEST/wheels"
DEST=$(realpath "$DEST")
PYTHON_VERSION=${PYTHON_VERSION:-$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
PLATFORM=${PLATFORM:-manylinux2014_x86_64}

echo "== regkit wheel"
python -m pip wheel -q --no-deps -w "$DEST/wheels" .
if [ "${NO_DEPS:-0}" != 1 ]; then
  echo "== dependency wheels for Python $PYTHON_VERSION on $PLATFORM"
  reqs=$(python -c "from importlib.metadata import requires
print('\n'.join(r for r in requires('regkit') if 'extra ==' not in r))")
  if [ "${SKIP_TORCH:-0}" = 1 ]; then reqs=$(grep -v '^torch' <<< "$reqs"); fi
  # shellcheck disable=SC2086
  python -m pip download -q --only-binary=:all: --python-version "$PYTHON_VERSION" --platform "$PLATFORM" \
    -d "$DEST/wheels" $reqs
fi

echo "== source tree (git archive HEAD)"
git archive --format=tar.gz -o "$DEST/regkit-src.tar.gz" HEAD

echo "== data"
DATA=${DATA:-runs/data}
[ -f "$DATA/val-prostate-mr/dataset.json" ] || DATA=$DATA bash scripts/make_training_data.sh
cache=$(python -c "from regkit.benchmark import benchmark_path, builtin_benchmark
builtin_benchmark(('train', 'val', 'test'), show_progress=False)  # rendered once, cached
print(benchmark_path())")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/runs/cache"
ln -s "$(realpath "$DATA")" "$stage/runs/data"
ln -s "$cache" "$stage/runs/cache/$(basename "$cache")"
tar -chf "$DEST/data.tar" -C "$stage" runs
sed -n '/^#     mkdir/,/^# and bring/p' "$0" | sed 's/^#     //; s/^# //; /^#$/d' > "$DEST/RUN.txt"
du -sh "$DEST"/* | sed 's/^/  /'
echo "copy $DEST to the target and follow $DEST/RUN.txt"
