#!/usr/bin/env bash
# The lite runtime for phones: cross-builds tessera_lite, its own tests and
# tessera-lite-bench for aarch64 with Debian's g++-aarch64-linux-gnu, and runs the tests
# under qemu-aarch64 (the portable kernels are what runs there). Called by scripts/test.sh.
#   bash scripts/test_aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu qemu-user \
      flatbuffers-compiler libflatbuffers-dev >/dev/null
  else
    echo "test_aarch64: skipped (needs g++-aarch64-linux-gnu and qemu-user; run as root to install)"
    exit 0
  fi
fi
# The flatbuffers headers are the same on every architecture; a folder of their own keeps
# the host's other headers out of the cross build.
mkdir -p build/aarch64/flatbuffers-include
ln -sfn /usr/include/flatbuffers build/aarch64/flatbuffers-include/flatbuffers
cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DTESSERA_LITE_ONLY=ON \
  -DFLATBUFFERS_INCLUDE_DIR="$PWD/build/aarch64/flatbuffers-include" >/dev/null
cmake --build build/aarch64 -j"$(nproc)"
file build/aarch64/libtessera_lite.so | grep -q "ARM aarch64"
ctest --test-dir build/aarch64 --output-on-failure
