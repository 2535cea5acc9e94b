#!/usr/bin/env python3
"""Training benchmark: the reference MLP and CNN on Fashion-MNIST for one epoch (batch 128,
Adam) with Tessera, PyTorch and TensorFlow/Keras at 1 and 2 threads, each run in its own
process. Prints images/s, epoch wall time, peak resident memory and test accuracy after
one epoch, and the ratio of Tessera's throughput to the faster peer's best thread setting
(R > 1: Tessera is faster). Then the input pipeline alone against training's consumption.
Run through bench/run_train.sh."""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_tessera(tool, model, threads):
    out = subprocess.run([tool, "train", "--model", model, "--epochs", "1", "--threads",
                          str(threads), "--verbose", "2", "--checkpoint", "/tmp/tessera_bench.st",
                          "--saved-model", "/tmp/tessera_bench.tsm",
                          "--lite-model", "/tmp/tessera_bench.tlite"],
                         check=True, capture_output=True, text=True).stdout
    grab = lambda pattern: float(re.search(pattern, out).group(1))
    return {"images_per_s": grab(r"training throughput: ([\d.]+)"),
            "epoch_s": grab(r"epoch wall time: ([\d.]+)"),
            "test_accuracy": grab(r"test accuracy: ([\d.]+)%") / 100,
            "peak_mib": grab(r"peak resident memory: ([\d.]+)")}


def run_peer(framework, model, threads):
    out = subprocess.run([sys.executable, os.path.join(HERE, "train_peers.py"), "--framework",
                          framework, "--model", model, "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tessera", required=True, help="the tessera command")
    ap.add_argument("--pipeline", help="the bench_pipeline binary")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    results = {}
    for model in a.models.split(","):
        for t in threads:
            for name, fn in [("tessera", lambda: run_tessera(a.tessera, model, t)),
                             ("pytorch", lambda: run_peer("torch", model, t)),
                             ("tensorflow", lambda: run_peer("tensorflow", model, t))]:
                results[(model, t, name)] = r = fn()
                print(f"  {model} {t}t {name}: {r['images_per_s']:.0f} images/s, epoch "
                      f"{r['epoch_s']:.1f} s, peak {r['peak_mib']:.0f} MiB, test accuracy "
                      f"{100 * r['test_accuracy']:.2f}%", flush=True)
    print()
    for model in a.models.split(","):
        best_peer = max(results[(model, t, p)]["images_per_s"] for t in threads
                        for p in ("pytorch", "tensorflow"))
        for t in threads:
            r = {p: results[(model, t, p)] for p in ("tessera", "pytorch", "tensorflow")}
            print(f"{model} train {t}t: tessera {r['tessera']['images_per_s']:.0f} images/s, "
                  f"pytorch {r['pytorch']['images_per_s']:.0f}, tensorflow "
                  f"{r['tensorflow']['images_per_s']:.0f}, ratio "
                  f"{r['tessera']['images_per_s'] / best_peer:.2f} (vs best peer setting "
                  f"{best_peer:.0f}); peak MiB tessera {r['tessera']['peak_mib']:.0f}, pytorch "
                  f"{r['pytorch']['peak_mib']:.0f}, tensorflow {r['tensorflow']['peak_mib']:.0f}")
    if a.pipeline:
        out = subprocess.run([a.pipeline], check=True, capture_output=True, text=True).stdout
        rate = float(re.search(r"pipeline: ([\d.]+) batches/s", out).group(1))
        fastest = max(results[(m, t, "tessera")]["images_per_s"] / 128
                      for m in a.models.split(",") for t in threads)
        print(f"pipeline: {rate:.0f} batches/s, training consumes at most {fastest:.0f} "
              f"batches/s: {rate / fastest:.1f}x")


if __name__ == "__main__":
    main()
