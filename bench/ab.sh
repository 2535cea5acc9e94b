#!/usr/bin/env bash
# Interleaved A/B of two Release builds of Tessera on this machine: per-op overhead and
# elementwise kernels (tessera_bench), graph-mode inference and training steps of the
# reference MLP and CNN (bench_graph). Prints each round's lines, A then B, so that a
# burst of load on the shared machine hits both.
#   bash bench/ab.sh BUILD_A BUILD_B [ROUNDS]   (build folders holding bench/ and tools/)
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
grep -m1 "model name" /proc/cpuinfo
grep -m1 -E "^cpu family" /proc/cpuinfo
grep -m1 -E "^model\s" /proc/cpuinfo
for round in $(seq "$rounds"); do
  for side in A B; do
    dir=$a
    [ "$side" = B ] && dir=$b
    "$dir/bench/tessera_bench" --benchmark_filter='BM_overhead_add|BM_elementwise' \
      --benchmark_min_time=0.2 2>/dev/null | grep -E "^BM_" | sed "s/^/$side r$round /"
    for model in mlp cnn; do
      for mode in infer train; do
        for threads in 1 2; do
          "$dir/bench/bench_graph" --model $model --mode $mode --runner graph \
            --threads $threads | sed "s/^/$side r$round /"
        done
      done
    done
  done
done
