#!/usr/bin/env python3
"""Trains the reference MLP or CNN on Fashion-MNIST for one epoch with PyTorch or
TensorFlow/Keras (batch 128, Adam 1e-3, a given thread count) and prints one JSON line:
images/s, epoch wall time, test accuracy and peak resident memory. Run by
train_compare.py, one process per measurement so that memory peaks stay separate."""
import argparse
import gzip
import json
import os
import resource
import time

import numpy as np

MEAN, STD = 0.2860, 0.3530


def load(data_dir, prefix):
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD), labels


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_model(model_name):
    """The reference CNN or MLP in PyTorch (also used by graph_peers.py)."""
    import torch.nn as nn
    if model_name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                         nn.ReLU(), nn.Linear(256, 10))


def keras_model(model_name):
    """The reference CNN or MLP in Keras, on NHWC images (also used by graph_peers.py)."""
    import tensorflow as tf
    L = tf.keras.layers
    if model_name == "cnn":
        layers = [L.Input((28, 28, 1)), L.Conv2D(32, 3, padding="same", activation="relu"),
                  L.MaxPool2D(2), L.Conv2D(64, 3, padding="same", activation="relu"),
                  L.MaxPool2D(2), L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)]
    else:
        layers = [L.Input((28, 28, 1)), L.Flatten(), L.Dense(256, activation="relu"),
                  L.Dense(256, activation="relu"), L.Dense(10)]
    return tf.keras.Sequential(layers)


def run_torch(model_name, threads, x, y, xt, yt, batch):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_model(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    order = torch.randperm(len(xs))
    start = time.perf_counter()
    for i in range(0, len(xs), batch):
        idx = order[i:i + batch]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(xt[i:i + 1000])).argmax(1)
                          for i in range(0, len(xt), 1000)])
    acc = (pred.numpy() == yt).mean()
    return seconds, acc


def run_tf(model_name, threads, x, y, xt, yt, batch):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.random.set_seed(0)
    x, xt = x.transpose(0, 2, 3, 1), xt.transpose(0, 2, 3, 1)  # Keras' fast layout: NHWC
    model = keras_model(model_name)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(batch)
    data = data.prefetch(2)
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    acc = model.evaluate(xt, yt, batch_size=1000, verbose=0)[1]
    return seconds, acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", choices=["torch", "tensorflow"], required=True)
    ap.add_argument("--model", choices=["cnn", "mlp"], required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    x, y = load(a.data_dir, "train")
    xt, yt = load(a.data_dir, "t10k")
    run = run_torch if a.framework == "torch" else run_tf
    seconds, acc = run(a.model, a.threads, x, y, xt, yt, a.batch_size)
    print(json.dumps({"images_per_s": len(x) / seconds, "epoch_s": seconds,
                      "test_accuracy": float(acc), "peak_mib": peak_mib()}))


if __name__ == "__main__":
    main()
