#!/usr/bin/env bash
# Fuzzes the saved-model loader with libFuzzer (clang from Debian) under ASan and UBSan,
# starting from the committed corpus of malformed files and a few valid models.
#   bash scripts/fuzz.sh [seconds]     (default 60)
# Crashes are written to build/fuzz/crashes/; add each one to tests/corpus/saved_model once
# fixed, so that CI loads it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v clang++ >/dev/null || ! dpkg -s libomp-dev >/dev/null 2>&1; then
  apt-get install -y -qq clang libomp-dev libclang-rt-dev
fi
seconds=${1:-60}
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DTESSERA_SANITIZE=ON -DTESSERA_FUZZ=ON -DTESSERA_BUILD_TESTS=OFF -DTESSERA_BUILD_BENCH=OFF \
  -DTESSERA_BUILD_EXAMPLES=OFF -DTESSERA_BUILD_TOOLS=OFF >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target fuzz_saved_model
mkdir -p build/fuzz/corpus build/fuzz/crashes
cp tests/corpus/saved_model/* build/fuzz/corpus/
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
build/fuzz/fuzz/fuzz_saved_model -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
  -artifact_prefix=build/fuzz/crashes/ build/fuzz/corpus
