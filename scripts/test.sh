#!/usr/bin/env bash
# Every test: installs dependencies, builds and runs the suite in Release, then again
# under AddressSanitizer + UndefinedBehaviorSanitizer (leaks reported as failures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_TESTS=ON \
  -DTESSERA_BUILD_EXAMPLES=ON -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=ON \
  -DTESSERA_BUILD_BENCH=OFF -DTESSERA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/asan -j"$jobs"
# OpenMP's runtime keeps its thread pool alive at exit: not a leak of ours.
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build/asan --output-on-failure -j"$jobs"

# The lite runtime cross-built for aarch64 (phones), its tests run under qemu.
bash scripts/test_aarch64.sh
