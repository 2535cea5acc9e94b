#!/usr/bin/env bash
# ctest's entry for check_export.py: test_onnx_export ($1) writes its exported models with
# their inputs and outputs to a temporary folder, which the checker reads with
# $TESSERA_ONNX_PYTHON (default: Debian's /usr/bin/python3, with python3-onnx).
set -e
default=python3
[ -x /usr/bin/python3 ] && default=/usr/bin/python3
python="${TESSERA_ONNX_PYTHON:-$default}"
command -v "$python" >/dev/null || { echo "skipped: no python3"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
TESSERA_ONNX_EXPORT_DIR="$dir" "$1" --gtest_brief=1
# The command line's round trip: `tessera import` then `tessera export` ($2) of the main
# job's CNN, checked like the rest on the same inputs.
"$2" import "$dir/main_cnn.onnx" -o "$dir/main_cnn.tsm"
"$2" export "$dir/main_cnn.tsm" -o "$dir/main_cnn_cli.onnx"
cp "$dir/main_cnn.input_0.npy" "$dir/main_cnn_cli.input_0.npy"
cp "$dir/main_cnn.expected_0.npy" "$dir/main_cnn_cli.expected_0.npy"
status=0
"$python" "$(dirname "$0")/check_export.py" "$dir" || status=$?
exit $status
