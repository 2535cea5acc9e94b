#!/usr/bin/env bash
# Builds the benchmarks, installs the peers (PyTorch, TensorFlow from PyPI into a
# virtual environment outside the source tree; LibTorch from Debian) and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for p in libtorch-dev libopenblas-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p"
done
source bench/peers_venv.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=ON \
  -DTESSERA_BUILD_EXAMPLES=ON -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target tessera_bench
libtorch_args=()
if cmake --build build/release --target libtorch_overhead >/dev/null 2>&1; then
  libtorch_args=(--libtorch build/release/bench/libtorch_overhead)
fi
"$venv/bin/python" bench/compare.py --tessera build/release/bench/tessera_bench \
  "${libtorch_args[@]}" "$@"
