#!/usr/bin/env bash
# The graph-mode benchmark (issue: graph mode): Tessera eager and graph against PyTorch eager
# and TensorFlow tf.function, batch-1 inference and an Adam training step of the reference
# MLP and CNN, in one run. Peers come from PyPI into a virtual environment outside the
# source tree. Arguments go to graph_compare.py (--threads, --rounds, --models, --modes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source bench/peers_venv.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target bench_graph
"$venv/bin/python" bench/graph_compare.py --bench build/release/bench/bench_graph "$@"
