"""ONNX Runtime (PyPI's onnxruntime, CPU, one thread) on the main job's CNN as Tessera
exports it (`tessera export`), float32 and int8 (onnxruntime.quantization's static QDQ
quantization, per-channel weights, calibrated on the same 512 training images as LiteRT);
batch 1. Prints one key=value line per model, like lite_peers.py. Run by bench/run_lite.sh."""
import argparse
import os
import statistics
import time

import numpy as np

from train_peers import MEAN, STD, load


def session(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def latency_us(sess, x, runs):
    name = sess.get_inputs()[0].name
    for _ in range(20):
        sess.run(None, {name: x[:1]})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x[:1]})
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def accuracy(sess, x, y):
    name = sess.get_inputs()[0].name
    correct = 0
    for i in range(0, len(x), 500):
        logits = sess.run(None, {name: x[i:i + 500]})[0]
        correct += int((logits.argmax(1) == y[i:i + 500]).sum())
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="the exported CNN (.onnx)")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", default="/tmp")
    args = parser.parse_args()
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    # Tessera's saved model normalizes inside (its serve signature takes pixels in [0, 1]),
    # as its lite models do: undo load()'s normalization.
    x, _ = load(args.data_dir, "train")
    xt, yt = load(args.data_dir, "t10k")
    x, xt = x * STD + MEAN, xt * STD + MEAN

    class Calibration(CalibrationDataReader):
        def __init__(self, name):
            self.items = iter([{name: x[i:i + 1]} for i in range(512)])

        def get_next(self):
            return next(self.items, None)

    int8_path = os.path.join(args.out, "ort_cnn_int8.onnx")
    name = session(args.model).get_inputs()[0].name
    quantize_static(args.model, int8_path, Calibration(name), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    for kind, path in (("float32", args.model), ("int8", int8_path)):
        sess = session(path)
        print(f"onnxruntime model={kind} bytes={os.path.getsize(path)} "
              f"latency_us={latency_us(sess, xt, args.runs):.1f} "
              f"accuracy={accuracy(sess, xt, yt):.4f}", flush=True)


if __name__ == "__main__":
    main()
