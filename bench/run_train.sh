#!/usr/bin/env bash
# The training benchmark (issue: training): Tessera, PyTorch and TensorFlow/Keras train the
# reference MLP and CNN on Fashion-MNIST in one run. Peers come from PyPI, installed into a
# virtual environment outside the source tree (as bench/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source bench/peers_venv.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target tessera_cli bench_pipeline
"$venv/bin/python" bench/train_compare.py --tessera build/release/tools/tessera \
  --pipeline build/release/bench/bench_pipeline "$@"
