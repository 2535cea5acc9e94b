#!/usr/bin/env python3
"""PyTorch (eager) and TensorFlow (a tf.function) on the graph benchmark's work: batch-1
inference latency and one Adam training step (batch 128, random data) of the reference MLP
or CNN. Prints one JSON line with the median time and peak resident memory; one
configuration per process (run by graph_compare.py)."""
import argparse
import json
import resource
import time

import numpy as np

from train_peers import keras_model, torch_model


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_us(fn, iters):
    for _ in range(max(5, iters // 10)):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return float(np.median(times))


def torch_run(model_name, mode, threads, iters, batch):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_model(model_name)
    if mode == "infer":
        model.eval()
        x = torch.randn(1, 1, 28, 28)

        def infer():
            with torch.no_grad():
                model(x)
        return median_us(infer, iters)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return median_us(step, iters)


def tf_run(model_name, mode, threads, iters, batch):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.random.set_seed(0)
    model = keras_model(model_name)
    shape = (28, 28, 1)
    if mode == "infer":
        x = tf.random.normal((1,) + shape)
        serve = tf.function(lambda t: model(t, training=False))
        return median_us(lambda: serve(x).numpy(), iters)
    x = tf.random.normal((batch,) + shape)
    y = tf.random.uniform((batch,), 0, 10, dtype=tf.int64)
    opt = tf.keras.optimizers.Adam(1e-3)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(a, b):
        with tf.GradientTape() as tape:
            loss = loss_fn(b, model(a, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
        return loss
    return median_us(lambda: step(x, y).numpy(), iters)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--framework", choices=["torch", "tf"], required=True)
    p.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    p.add_argument("--mode", choices=["infer", "train"], default="infer")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=0)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    iters = a.iters or (2000 if a.mode == "infer" else (40 if a.model == "cnn" else 300))
    run = torch_run if a.framework == "torch" else tf_run
    us = run(a.model, a.mode, a.threads, iters, a.batch)
    print(json.dumps({"framework": a.framework,
                      "runner": "eager" if a.framework == "torch" else "tf.function",
                      "model": a.model, "mode": a.mode, "threads": a.threads,
                      "median_us": round(us, 1), "peak_mib": round(peak_mib(), 1)}))


if __name__ == "__main__":
    main()
