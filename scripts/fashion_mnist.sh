#!/usr/bin/env bash
# Fashion-MNIST as class folders for encode-dataset / `swycc experiment generation`, offline from
# Debian's dataset-fashion-mnist package (MIT licence): 28 px grey images zero-padded to 32 px.
#   scripts/fashion_mnist.sh OUT [PER_CLASS_TRAIN=500] [PER_CLASS_TEST=20]
# writes OUT/train (PER_CLASS_TRAIN images of each of the 10 classes, from the training split)
# and OUT/test (PER_CLASS_TEST per class, from the test split).
set -euo pipefail
out=${1:?usage: scripts/fashion_mnist.sh OUT [PER_CLASS_TRAIN] [PER_CLASS_TEST]}
train=${2:-500}
test=${3:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download dataset-fashion-mnist >/dev/null && dpkg -x ./*.deb pkg)
src="$work/pkg/usr/share/datasets/fashion-mnist"
mkdir -p "$out"
cp "$work/pkg/usr/share/doc/dataset-fashion-mnist/copyright" "$out/COPYRIGHT"
"$py" -m swycc.data.idx_folder --images "$src/train-images-idx3-ubyte.gz" \
    --labels "$src/train-labels-idx1-ubyte.gz" --per-class "$train" --pad-to 32 --out "$out/train"
"$py" -m swycc.data.idx_folder --images "$src/t10k-images-idx3-ubyte.gz" \
    --labels "$src/t10k-labels-idx1-ubyte.gz" --per-class "$test" --pad-to 32 --out "$out/test"
