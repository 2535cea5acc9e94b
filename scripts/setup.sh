#!/usr/bin/env bash
# Installs the Debian 12 packages Tessera builds and tests with (needs root for apt-get).
set -euo pipefail
# zlib, stb and nlohmann-json: dataset and checkpoint readers; CLI11: the tessera command;
# flatbuffers: saved models; dataset-fashion-mnist: the main job's data; OpenMPI:
# distributed training and its tests; protobuf and ONNX (with the ONNX backend test suite's
# data): ONNX import; python3-onnx: onnx.checker on exported models.
packages=(build-essential cmake libdnnl-dev libgtest-dev libgmock-dev libbenchmark-dev
          clang-format zlib1g-dev libstb-dev nlohmann-json3-dev libcli11-dev
          flatbuffers-compiler libflatbuffers-dev dataset-fashion-mnist libopenmpi-dev
          openmpi-bin libprotobuf-dev libonnx-dev libonnx-testdata python3-onnx python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
