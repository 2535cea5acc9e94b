#!/usr/bin/env bash
# The main job: installs dependencies (Fashion-MNIST included), builds Tessera (Release),
# trains the reference CNN for 5 epochs, saves a checkpoint and a saved model (graph), reloads
# the saved model and prints test accuracy, training throughput and eager against graph
# latency. Extra arguments go to `tessera train` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=ON \
  -DTESSERA_BUILD_EXAMPLES=ON -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target tessera_cli
mkdir -p out
./build/release/tools/tessera train --model cnn --epochs 5 --batch-size 128 \
  --checkpoint out/fashion_mnist_cnn.safetensors --saved-model out/fashion_mnist_cnn.tsm \
  --lite-model out/fashion_mnist_cnn.tlite "$@"
