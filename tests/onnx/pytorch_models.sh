#!/usr/bin/env bash
# ctest's entry for pytorch_models.py: runs it with $TESSERA_TORCH_PYTHON, else the system
# python3 (it exits 77, which ctest reports as skipped, where PyTorch is absent).
python="${TESSERA_TORCH_PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "skipped: no python3"; exit 77; }
exec "$python" "$(dirname "$0")/pytorch_models.py" --tessera "$1"
