#!/usr/bin/env python3
"""Runs the same work in Tessera, PyTorch, TensorFlow (and LibTorch for per-op overhead)
at 1 and 2 threads, and prints one line per case:

  case: tessera X unit, pytorch Y unit, tensorflow Z unit, ratio R

R is the faster peer's time over Tessera's (R > 1: Tessera is faster). Times are medians
of repeated runs. Usage: bench/run.sh (which builds and sets up the peers), or
  python3 bench/compare.py --tessera build/bench/tessera_bench [--libtorch PATH] [--markdown OUT]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

ELEMENTWISE_SIZES = [1 << 20, 16 << 20]
MATMUL_SIZES = [128, 256, 512, 1024, 2048]
CONV_CASES = {  # name: (N, Cin, Cout, H, W, groups)
    "conv 128x1->32 28x28": (128, 1, 32, 28, 28, 1),
    "conv 128x32->64 14x14": (128, 32, 64, 14, 14, 1),
    "conv 32x64->64 56x56": (32, 64, 64, 56, 56, 1),
    "conv dw 1x32 112x112": (1, 32, 32, 112, 112, 32),
}


def median_time(fn, min_seconds=0.2, repeats=5):
    """Median seconds per call of fn over `repeats` timed batches."""
    fn()  # warm-up
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds / repeats or n > 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def torch_cases(threads):
    import torch
    torch.set_num_threads(threads)
    out = {}
    a1, b1 = torch.ones(1), torch.ones(1)

    def overhead():
        for _ in range(10000):
            a1 + b1
    with torch.no_grad():
        out["overhead"] = median_time(overhead) / 10000
        for n in ELEMENTWISE_SIZES:
            a, b = torch.rand(n), torch.rand(n)
            out[f"add {n}"] = median_time(lambda: a + b)
            out[f"mul {n}"] = median_time(lambda: a * b)
            out[f"exp {n}"] = median_time(lambda: torch.exp(a))
        big = torch.rand(16 << 20)
        out["sum 16M"] = median_time(lambda: big.sum())
        for n in MATMUL_SIZES:
            a, b = torch.rand(n, n), torch.rand(n, n)
            out[f"matmul {n}"] = median_time(lambda: a @ b)
    for name, (n, cin, cout, h, w, groups) in CONV_CASES.items():
        x = torch.rand(n, cin, h, w)
        wt = torch.rand(cout, cin // groups, 3, 3) * 0.1
        with torch.no_grad():
            out[name + " fwd"] = median_time(
                lambda: torch.nn.functional.conv2d(x, wt, padding=1, groups=groups), repeats=3)
        xg = x.clone().requires_grad_(cin > 1)
        wg = wt.clone().requires_grad_(True)

        def fwd_bwd():
            y = torch.nn.functional.conv2d(xg, wg, padding=1, groups=groups)
            y.sum().backward()
        out[name + " fwd+bwd"] = median_time(fwd_bwd, repeats=3)
    return out


def tf_cases(threads):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out = {}
    a1, b1 = tf.ones([1]), tf.ones([1])

    def overhead():
        for _ in range(10000):
            tf.add(a1, b1)
    out["overhead"] = median_time(overhead, repeats=3) / 10000
    for n in ELEMENTWISE_SIZES:
        a, b = tf.random.uniform([n]), tf.random.uniform([n])
        out[f"add {n}"] = median_time(lambda: tf.add(a, b))
        out[f"mul {n}"] = median_time(lambda: tf.multiply(a, b))
        out[f"exp {n}"] = median_time(lambda: tf.exp(a))
    big = tf.random.uniform([16 << 20])
    out["sum 16M"] = median_time(lambda: tf.reduce_sum(big))
    for n in MATMUL_SIZES:
        a, b = tf.random.uniform([n, n]), tf.random.uniform([n, n])
        out[f"matmul {n}"] = median_time(lambda: tf.linalg.matmul(a, b))
    for name, (n, cin, cout, h, w, groups) in CONV_CASES.items():
        x = tf.random.uniform([n, h, w, cin])  # TF's CPU conv wants NHWC
        if groups == 1:
            wt = tf.Variable(tf.random.uniform([3, 3, cin, cout]) * 0.1)
            conv = lambda: tf.nn.conv2d(x, wt, 1, "SAME")
        else:
            wt = tf.Variable(tf.random.uniform([3, 3, cin, 1]) * 0.1)
            conv = lambda: tf.nn.depthwise_conv2d(x, wt, [1, 1, 1, 1], "SAME")
        out[name + " fwd"] = median_time(conv, repeats=3)
        xv = tf.Variable(x)

        def fwd_bwd():
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(conv() if cin == 1 else (
                    tf.nn.conv2d(xv, wt, 1, "SAME") if groups == 1
                    else tf.nn.depthwise_conv2d(xv, wt, [1, 1, 1, 1], "SAME")))
            tape.gradient(y, [wt] if cin == 1 else [xv, wt])
        out[name + " fwd+bwd"] = median_time(fwd_bwd, repeats=3)
    return out


def tessera_cases(binary, threads):
    res = subprocess.run(
        [binary, "--benchmark_format=json", "--benchmark_repetitions=5",
         "--benchmark_report_aggregates_only=true", "--benchmark_min_time=0.1",
         f"--benchmark_filter=/{threads}/real_time$|BM_memcpy"],
        check=True, capture_output=True, text=True)
    data = json.loads(res.stdout)
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        seconds = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        parts = name.split("/")
        kind = parts[0][3:]
        if kind == "overhead_add":
            out["overhead"] = seconds / 10000
        elif kind in ("add", "mul", "exp"):
            out[f"{kind} {parts[1]}"] = seconds
        elif kind == "memcpy":
            out[f"memcpy {parts[1]}"] = seconds
        elif kind == "sum":
            out["sum 16M"] = seconds
        elif kind == "matmul":
            out[f"matmul {parts[1]}"] = seconds
        elif kind in ("conv_fwd", "conv_fwd_bwd"):
            case = list(CONV_CASES)[int(parts[1])]
            out[case + (" fwd" if kind == "conv_fwd" else " fwd+bwd")] = seconds
    return out


def run_peer(peer, threads):
    res = subprocess.run([sys.executable, __file__, "--peer", peer, "--threads", str(threads)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        print(f"# {peer} at {threads} threads failed: {res.stderr.strip()[-400:]}")
        return {}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(seconds, unit):
    if seconds is None:
        return "n/a"
    scale = {"us": 1e6, "ms": 1e3}[unit]
    return f"{seconds * scale:.3f} {unit}"


def cpu_label():
    """The CPU as /proc/cpuinfo names it: the shared host has moved between generations whose
    FP32 rates differ twofold (AMD family 25 = Zen 4, 26 = Zen 5), which changes ratios."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown"
    return (f"{fields.get('model name', '?')}, family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", choices=["torch", "tensorflow"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tessera", default="build/bench/tessera_bench")
    ap.add_argument("--libtorch", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    if args.peer:
        fn = torch_cases if args.peer == "torch" else tf_cases
        print(json.dumps(fn(args.threads)))
        return
    rows = [f"host: {cpu_label()}"]
    print(rows[0], flush=True)
    for threads in (1, 2):
        tess = tessera_cases(args.tessera, threads)
        if "matmul 2048" in tess:  # the host's FP32 rate, to tell which CPU a run got
            rate = 2 * 2048**3 / tess["matmul 2048"] / 1e9
            rows.append(f"host: matmul 2048 [{threads}t] at {rate:.0f} GFLOP/s")
            print(rows[-1], flush=True)
        torch_r = run_peer("torch", threads)
        tf_r = run_peer("tensorflow", threads)
        libtorch = None
        if args.libtorch:
            r = subprocess.run([args.libtorch, str(threads)], capture_output=True, text=True)
            if r.returncode == 0:
                libtorch = float(r.stdout.strip()) * 1e-6
        for case, t in tess.items():
            if case.startswith("memcpy"):
                continue
            unit = "us" if case == "overhead" or t < 1e-3 else "ms"
            peers = [v for v in (torch_r.get(case), tf_r.get(case)) if v]
            if case == "overhead" and libtorch:
                peers.append(libtorch)
            ratio = min(peers) / t if peers else float("nan")
            line = (f"{case} [{threads}t]: tessera {fmt(t, unit)}, pytorch {fmt(torch_r.get(case), unit)}, "
                    f"tensorflow {fmt(tf_r.get(case), unit)}")
            if case == "overhead":
                line += f", libtorch {fmt(libtorch, unit)}"
            kind, _, size = case.partition(" ")
            if kind in ("add", "mul", "exp") and f"memcpy {size}" in tess:
                streams = 2 if kind == "exp" else 3
                gbs = streams * 4 * int(size) / t / 1e9
                mem = 2 * 4 * int(size) / tess[f"memcpy {size}"] / 1e9
                line += f", {gbs:.1f} GB/s = {100 * gbs / mem:.0f}% of memcpy {mem:.1f} GB/s"
            line += f", ratio {ratio:.2f}"
            print(line, flush=True)
            rows.append(line)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
