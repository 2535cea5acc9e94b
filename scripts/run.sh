#!/usr/bin/env bash
# The main job: installs dependencies, builds Tessera (Release) and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=ON \
  -DTESSERA_BUILD_EXAMPLES=ON -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target fit_sine
./build/release/examples/fit_sine
