#!/usr/bin/env python3
"""The graph-mode benchmark: Tessera eager and graph, PyTorch eager and TensorFlow
tf.function on batch-1 inference and an Adam training step of the reference MLP and CNN,
each configuration in its own process, repeated in interleaved rounds (the host is noisy:
medians of rounds). Prints a table with ratios and the planned memory of Tessera's graphs."""
import argparse
import json
import statistics
import subprocess
import sys

PEERS = ["tessera-eager", "tessera-graph", "torch", "tf"]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True, help="build/release/bench/bench_graph")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--modes", default="infer,train")
    a = p.parse_args()
    results = {}
    for r in range(a.rounds):
        for model in a.models.split(","):
            for mode in a.modes.split(","):
                for peer in PEERS:
                    common = ["--model", model, "--mode", mode, "--threads", str(a.threads)]
                    if peer.startswith("tessera"):
                        cmd = [a.bench, "--runner", peer.split("-")[1]] + common
                    else:
                        cmd = [sys.executable, "bench/graph_peers.py", "--framework", peer] + common
                    res = run(cmd)
                    results.setdefault((model, mode, peer), []).append(res)
                    print(f"round {r + 1}: {model} {mode} {peer}: {res['median_us']:.1f} us, "
                          f"peak {res['peak_mib']:.0f} MiB", file=sys.stderr)
    print(f"\n{a.threads} threads, median of {a.rounds} rounds (each a median of many runs)")
    print(f"{'work':<14}{'tessera eager':>15}{'tessera graph':>15}{'torch':>12}{'tf.function':>13}"
          f"{'graph/eager':>13}{'vs torch':>10}{'vs tf':>8}")
    for model in a.models.split(","):
        for mode in a.modes.split(","):
            med = {peer: statistics.median(x["median_us"] for x in results[(model, mode, peer)])
                   for peer in PEERS}
            unit, scale = ("us", 1) if mode == "infer" else ("ms", 1e-3)
            cells = "".join(f"{med[p] * scale:>12.1f} {unit}" for p in PEERS)
            print(f"{model + ' ' + mode:<14}{cells}"
                  f"{med['tessera-eager'] / med['tessera-graph']:>12.2f}x"
                  f"{med['torch'] / med['tessera-graph']:>9.2f}x"
                  f"{med['tf'] / med['tessera-graph']:>7.2f}x")
    print(f"\n{'peak memory (MiB)':<18}" + "".join(f"{p:>15}" for p in PEERS) +
          f"{'planned/naive':>16}")
    for model in a.models.split(","):
        for mode in a.modes.split(","):
            rows = results[(model, mode, "tessera-graph")]
            planned = statistics.median(x["planned_bytes"] for x in rows)
            naive = statistics.median(x["naive_bytes"] for x in rows)
            peaks = "".join(
                f"{statistics.median(x['peak_mib'] for x in results[(model, mode, p)]):>15.0f}"
                for p in PEERS)
            print(f"{model + ' ' + mode:<18}{peaks}"
                  f"{planned / 2**20:>8.2f}/{naive / 2**20:.2f} ({planned / naive:.2f}x)")


if __name__ == "__main__":
    main()
