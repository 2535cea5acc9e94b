"""LiteRT (TensorFlow Lite's runtime, PyPI's ai-edge-litert, default XNNPACK CPU path) on
the main job's CNN built in Keras (bench/train_peers.py), trained briefly, converted by
TensorFlow's own converter to float32 and to full-integer int8 calibrated on 512 training
images; batch 1, one thread. Prints one key=value line per model. Run by bench/run_lite.sh."""
import argparse
import os
import statistics
import time

import numpy as np

from train_peers import keras_model, load


def latency_us(interpreter, x, runs):
    inp = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(inp, x[:1])
    for _ in range(20):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def accuracy(interpreter, x, y):
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    correct = 0
    for i in range(len(x)):
        interpreter.set_tensor(inp, x[i:i + 1])
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(out)) == y[i])
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="/tmp")
    args = parser.parse_args()
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    tf.config.threading.set_intra_op_parallelism_threads(2)
    x, y = load(args.data_dir, "train")
    xt, yt = load(args.data_dir, "t10k")
    x, xt = x.transpose(0, 2, 3, 1).copy(), xt.transpose(0, 2, 3, 1).copy()  # NHWC
    model = keras_model("cnn")
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0)

    def representative():
        for i in range(512):
            yield [x[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    models = {"float32": converter.convert()}
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    models["int8"] = converter.convert()
    for kind, content in models.items():
        path = os.path.join(args.out, f"litert_cnn_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        print(f"litert model={kind} bytes={len(content)} "
              f"latency_us={latency_us(interpreter, xt, args.runs):.1f} "
              f"accuracy={accuracy(interpreter, xt, yt):.4f}", flush=True)


if __name__ == "__main__":
    main()
