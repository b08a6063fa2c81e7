#!/bin/sh
# The demo (`make demo`): nnc compiles a real, trained network and classifies real data.
#
#   1. builds nnc and its runtime (`make`, which also installs missing Debian packages,
#      dataset-fashion-mnist among them);
#   2. compiles models/fashion_resnet18.net (d2l's ResNet-18, trained on Fashion-MNIST by
#      tools/train_fashion.py) for batches of 64, and builds demo/fashion_demo.c against it;
#   3. decompresses the 10,000 test images and labels (gzip -dc) and classifies them all:
#      accuracy, images per second, confusion matrix, a few predictions;
#   4. compiles models/resnet50.net (ImageNet size, random weights from
#      tools/export_torchvision.py: the speed does not depend on them) and prints its --bench line.
#
# Everything it makes goes to build/demo/. Run from anywhere: sh demo/demo.sh
# Environment: CC (default cc), THREADS (default: all CPUs), BENCH_RUNS (default 5).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CC=${CC:-cc}
OUT=build/demo
DATA=/usr/share/datasets/fashion-mnist
WEIGHTS=models/weights/fashion_resnet18.safetensors
THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
BENCH_RUNS=${BENCH_RUNS:-5}

step() { printf '\n== %s\n' "$*"; }

step "building nnc"
make -s all

if [ ! -f "$DATA/t10k-images-idx3-ubyte.gz" ]; then
    # make's deps step installs it; this covers a machine where that was skipped
    sh tools/deps.sh
fi
for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$DATA/$f.gz" ] || { echo "demo: error: $DATA/$f.gz not found (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
[ -f "$WEIGHTS" ] || { echo "demo: error: $WEIGHTS not found (train it: /usr/bin/python3 tools/train_fashion.py)" >&2; exit 1; }

mkdir -p "$OUT"
step "compiling models/fashion_resnet18.net (batch 64)"
echo "build/nnc models/fashion_resnet18.net -D batch=64 -o $OUT/fashion_resnet18.c"
build/nnc models/fashion_resnet18.net -D batch=64 -o "$OUT/fashion_resnet18.c"
echo "$CC -O2 -march=native -I$OUT demo/fashion_demo.c $OUT/fashion_resnet18.c \$(build/nnc --cflags) \$(build/nnc --libs) -o $OUT/fashion_demo"
# shellcheck disable=SC2046  # the flags are meant to split
$CC -O2 -march=native -I"$OUT" demo/fashion_demo.c "$OUT/fashion_resnet18.c" \
    $(build/nnc --cflags) $(build/nnc --libs) -o "$OUT/fashion_demo"

for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$OUT/$f" ] || [ "$DATA/$f.gz" -nt "$OUT/$f" ]; then
        gzip -dc "$DATA/$f.gz" > "$OUT/$f.tmp" && mv "$OUT/$f.tmp" "$OUT/$f"
    fi
done

step "classifying the Fashion-MNIST test set"
"$OUT/fashion_demo" --weights "$WEIGHTS" --images "$OUT/t10k-images-idx3-ubyte" \
    --labels "$OUT/t10k-labels-idx1-ubyte" --threads "$THREADS"

step "ResNet-50 at 224x224 (models/resnet50.net, random weights), $BENCH_RUNS runs"
if [ ! -f "$OUT/resnet50.safetensors" ]; then
    echo "/usr/bin/python3 tools/export_torchvision.py resnet50 $OUT/resnet50.safetensors --dtype F16"
    /usr/bin/python3 tools/export_torchvision.py resnet50 "$OUT/resnet50.safetensors.tmp" --dtype F16 >/dev/null
    mv "$OUT/resnet50.safetensors.tmp" "$OUT/resnet50.safetensors"
fi
echo "build/nnc models/resnet50.net --main -o $OUT/resnet50.c"
build/nnc models/resnet50.net --main -o "$OUT/resnet50.c"
# shellcheck disable=SC2046
$CC -O2 -march=native "$OUT/resnet50.c" $(build/nnc --cflags) $(build/nnc --libs) -o "$OUT/resnet50"
echo "$OUT/resnet50 --weights $OUT/resnet50.safetensors --bench $BENCH_RUNS --threads $THREADS"
log="$OUT/resnet50.log"
if ! "$OUT/resnet50" --weights "$OUT/resnet50.safetensors" --bench "$BENCH_RUNS" --threads "$THREADS" >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo: error: $OUT/resnet50 failed" >&2
    exit 1
fi
# the file holds BatchNorm's num_batches_tracked counters, which inference does not use
grep -v -e "^warning: unused weight '.*num_batches_tracked'" -e '^warning: and [0-9]* more unused weights' "$log" || true
