#!/usr/bin/env bash
# Fuzzes the saved-model loader, the lite model loader, the ONNX importer and the loaders of
# checkpoints and data files (safetensors, .npy, IDX, CSV, images, text lines) with
# libFuzzer (clang from Debian) under ASan and UBSan, each starting from its committed
# corpus of malformed files and a few valid ones.
#   bash scripts/fuzz.sh [seconds] [saved_model|lite_model|onnx_model|data_files]
#   (default 60 s each, all)
# Crashes are written to build/fuzz/crashes/; add each one to tests/corpus/<target> once
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
targets=${2:-"saved_model lite_model onnx_model data_files"}
for target in $targets; do
  cmake --build build/fuzz -j"$(nproc)" --target "fuzz_$target"
done
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
for target in $targets; do
  case $target in
    saved_model) corpus_dir=saved_model ;;
    lite_model) corpus_dir=lite ;;
    onnx_model) corpus_dir=onnx ;;
    data_files) corpus_dir=data_files ;;
  esac
  mkdir -p "build/fuzz/corpus_$target" build/fuzz/crashes
  cp tests/corpus/$corpus_dir/* "build/fuzz/corpus_$target/"
  "build/fuzz/fuzz/fuzz_$target" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
    -artifact_prefix=build/fuzz/crashes/ "build/fuzz/corpus_$target"
done
