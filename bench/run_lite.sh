#!/usr/bin/env bash
# The lite benchmark (issue: lite): the main job's CNN at batch 1 on one thread, float32
# and int8, in Tessera's lite runtime and in LiteRT (TensorFlow Lite's runtime from PyPI,
# the same network built in Keras and converted by TensorFlow's converter, int8 calibrated
# on the same 512 training images); accuracy on the 10,000 test images, file sizes, median
# latencies and ratios, and the runtimes' library sizes. ONNX Runtime runs the same CNN
# as `tessera export` writes it (float32, and int8 by its own static quantization on the
# same calibration images), reported beside them.
#   bash bench/run_lite.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
[ "${1:-}" = --rounds ] && rounds=$2
bash scripts/setup.sh
source bench/peers_venv.sh
"$venv/bin/python" -c "import ai_edge_litert" 2>/dev/null || "$venv/bin/pip" install -q ai-edge-litert
"$venv/bin/python" -c "import onnxruntime" 2>/dev/null || "$venv/bin/pip" install -q onnxruntime
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target tessera_cli tessera_lite_bench tessera_lite
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
log="$dir/log"

# Tessera: one epoch of the main job, which converts and checks both lite models.
build/release/tools/tessera train --epochs 1 --verbose 0 --checkpoint "$dir/cnn.safetensors" \
  --saved-model "$dir/cnn.tsm" --lite-model "$dir/cnn.tlite" | grep "lite model" | tee -a "$log"
build/release/tools/tessera export "$dir/cnn.tsm" -o "$dir/cnn.onnx" >/dev/null
for round in $(seq "$rounds"); do
  for kind in float32 int8; do
    file="$dir/cnn.tlite"
    [ $kind = int8 ] && file="$dir/cnn.int8.tlite"
    us=$(build/release/tools/tessera-lite-bench "$file" --runs 300 | sed -n 's/^latency: \([0-9.]*\) us.*/\1/p')
    echo "tessera model=$kind latency_us=$us" | tee -a "$log"
  done
  (cd bench && "$venv/bin/python" lite_peers.py --out "$dir" 2>/dev/null | grep "^litert") | tee -a "$log"
  (cd bench && "$venv/bin/python" ort_peer.py --model "$dir/cnn.onnx" --out "$dir" 2>/dev/null |
    grep "^onnxruntime") | tee -a "$log"
done

"$venv/bin/python" - "$log" "$(dirname "$("$venv/bin/python" -c 'import ai_edge_litert; print(ai_edge_litert.__file__)')")" <<'PY'
import glob, os, re, statistics, subprocess, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(tessera|litert|onnxruntime) model=(\w+) .*latency_us=([\d.]+)", line)
    if m:
        runs.setdefault((m[1], m[2]), []).append(float(m[3]))
print("\nbatch-1 latency, one thread (median of rounds, each a median of 300 invokes):")
for kind in ("float32", "int8"):
    t, l = statistics.median(runs[("tessera", kind)]), statistics.median(runs[("litert", kind)])
    o = statistics.median(runs[("onnxruntime", kind)])
    print(f"  {kind:8s} tessera {t:7.1f} us  litert {l:7.1f} us  tessera/litert {t / l:.2f}x"
          f"  onnxruntime {o:7.1f} us  tessera/onnxruntime {t / o:.2f}x")
t8, tf = statistics.median(runs[("tessera", "int8")]), statistics.median(runs[("tessera", "float32")])
print(f"  tessera int8 / float32: {t8 / tf:.2f}x (target <= 0.5x)")
subprocess.run(["strip", "-o", "/tmp/tessera_lite_stripped.so", "build/release/libtessera_lite.so"])
print(f"libtessera_lite.so stripped: {os.path.getsize('/tmp/tessera_lite_stripped.so') / 1024:.0f} KiB")
# libLiteRt.so is LiteRT's runtime (interpreter, kernels, XNNPACK) as apps link it.
runtime = os.path.join(sys.argv[2], "libLiteRt.so")
if os.path.exists(runtime):
    subprocess.run(["strip", "-o", "/tmp/litert_stripped.so", runtime])
    print(f"LiteRT's libLiteRt.so stripped: {os.path.getsize('/tmp/litert_stripped.so') / 1024:.0f} KiB")
PY
