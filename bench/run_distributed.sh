#!/usr/bin/env bash
# The distributed benchmark (issue: distributed data-parallel training): the main job's CNN
# on Fashion-MNIST with 1 rank of one thread, 2 ranks of one thread each and 1 rank of two
# threads, for Tessera (under mpirun) and PyTorch DDP (gloo), in interleaved rounds; the
# gradient exchange per step and the part of it hidden behind backward; then allreduce
# bandwidth from 1 KiB to 64 MiB against MPI_Allreduce alone. Prints medians and ratios.
#   bash bench/run_distributed.sh [--rounds N] [--steps N]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
steps=150
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bash scripts/setup.sh
source bench/peers_venv.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_BENCH=ON >/dev/null
cmake --build build/release -j"$(nproc)" --target bench_distributed
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # containers forbid cross-memory attach
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
bench=build/release/bench/bench_distributed
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for round in $(seq "$rounds"); do
  echo "round $round of $rounds"
  "${mpi[@]}" -np 1 "$bench" train --threads 1 --steps "$steps" | tee -a "$log"
  "${mpi[@]}" -np 2 "$bench" train --threads 1 --steps "$steps" | tee -a "$log"
  "${mpi[@]}" -np 1 "$bench" train --threads 2 --steps "$steps" | tee -a "$log"
  (cd bench && "$venv/bin/python" ddp_peers.py --ranks 1 --threads 1 --steps "$steps") | tee -a "$log"
  (cd bench && "$venv/bin/python" ddp_peers.py --ranks 2 --threads 1 --steps "$steps") | tee -a "$log"
done

"$venv/bin/python" - "$log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
    if "images_per_s" not in fields:
        continue
    key = (line.split()[0], int(fields["ranks"]), int(fields["threads"]))
    runs.setdefault(key, []).append(fields)
med = lambda key, name: statistics.median(float(f[name]) for f in runs[key])
print("\nmedians over rounds (images/s, global batch 128):")
for key in sorted(runs):
    print(f"  {key[0]:10s} ranks={key[1]} threads/rank={key[2]}: {med(key, 'images_per_s'):8.0f}")
one = med(("train", 1, 1), "images_per_s")
two = med(("train", 2, 1), "images_per_s")
both = med(("train", 1, 2), "images_per_s")
print(f"tessera 2 ranks x 1 thread / 1 rank x 1 thread: {two / one:.2f}x (target >= 1.7x)")
print(f"tessera 2 ranks x 1 thread / 1 rank x 2 threads: {two / both:.2f}x")
print(f"gradient exchange per step: {med(('train', 2, 1), 'exchange_ms_per_step'):.2f} ms on the "
      f"communication thread (using {med(('train', 2, 1), 'exchange_cpu_ms_per_step'):.2f} ms of "
      f"processor), {med(('train', 2, 1), 'waited_ms_per_step'):.2f} ms not hidden; "
      f"hidden {100 * med(('train', 2, 1), 'hidden'):.0f}% (target >= 80%)")
print("per round, 2 ranks / 1 rank:", ", ".join(
    f"{float(a['images_per_s']) / float(b['images_per_s']):.2f}"
    for a, b in zip(runs[("train", 2, 1)], runs[("train", 1, 1)])))
print("per round, hidden:", ", ".join(f"{float(a['hidden']):.2f}" for a in runs[("train", 2, 1)]))
if ("torch_ddp", 2, 1) in runs:
    t1, t2 = med(("torch_ddp", 1, 1), "images_per_s"), med(("torch_ddp", 2, 1), "images_per_s")
    print(f"pytorch ddp 2 ranks / 1 rank: {t2 / t1:.2f}x; tessera / pytorch at 2 ranks: "
          f"{two / t2:.2f}x, at 1 rank: {one / t1:.2f}x")
PY

echo
echo "allreduce bandwidth, 2 ranks (median of repeats; ratio = Tessera / MPI_Allreduce):"
"${mpi[@]}" -np 2 "$bench" allreduce
