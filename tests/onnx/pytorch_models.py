#!/usr/bin/env python3
"""PyTorch models through ONNX into Tessera: torchvision's ResNet-18 and MobileNetV2 and a
small Transformer encoder, with random weights, are exported by torch.onnx, imported with
`tessera import`, run with `tessera run`, and compared with PyTorch's outputs (1e-4
relative to the largest output). ResNet-18 is then fine-tuned by `tessera fine-tune` next to
PyTorch and converted to an int8 lite model. Exits 77 (ctest: skipped) with a reason where PyTorch or
torchvision is missing; ctest runs it with $TESSERA_TORCH_PYTHON when set.

    python3 tests/onnx/pytorch_models.py --tessera build/release/tools/tessera
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision
except ImportError as e:
    print(f"skipped: {e.name} is not installed (Debian's python3-torch and python3-torchvision, "
          "or set TESSERA_TORCH_PYTHON to a Python that has them)")
    sys.exit(77)


def models():
    torch.manual_seed(0)
    encoder_layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                                     dropout=0.0, batch_first=True)
    encoder = torch.nn.TransformerEncoder(encoder_layer, num_layers=2, enable_nested_tensor=False)
    return [
        ("resnet18", torchvision.models.resnet18(weights=None), torch.randn(2, 3, 224, 224)),
        ("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), torch.randn(2, 3, 224, 224)),
        ("transformer_encoder", encoder, torch.randn(2, 10, 64)),
    ]


def check(tessera, name, model, x, workdir):
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(model, (x,), onnx_path, opset_version=17, input_names=["x"],
                      output_names=["y"], **kwargs)
    tsm, x_npy, y_npy = (os.path.join(workdir, f"{name}.{ext}") for ext in ("tsm", "x.npy", "y.npy"))
    np.save(x_npy, x.numpy())
    subprocess.run([tessera, "import", onnx_path, "-o", tsm], check=True)
    subprocess.run([tessera, "run", tsm, "--input", x_npy, "--output", y_npy], check=True,
                   stdout=subprocess.DEVNULL)
    got = np.load(y_npy)
    if got.shape != expected.shape:
        return f"{name}: shape {got.shape}, PyTorch gives {expected.shape}"
    error = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    print(f"{name}: max |tessera - pytorch| / max |pytorch| = {error:.2e}")
    return None if error <= 1e-4 else f"{name}: relative error {error:.2e} over 1e-4"


def fine_tune_and_quantize(tessera, workdir, steps=5, lr=1e-3):
    """ResNet-18 exported with a dynamic batch, imported with trainable initializers,
    fine-tuned by `tessera fine-tune` (SGD, momentum 0.9) alongside the same steps in
    PyTorch, whose losses it must follow, then converted to a full-integer int8 lite model
    that `tessera run` runs; its logits must stay within 10% of the float model's."""
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    model.eval()  # batch norm uses its running statistics, as in the exported graph
    x = torch.randn(32, 3, 64, 64)
    labels = torch.randint(0, 10, (32,))
    path = lambda name: os.path.join(workdir, name)
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(model, (x[:2],), path("r.onnx"), opset_version=17, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      **kwargs)
    np.save(path("x.npy"), x.numpy())
    np.save(path("labels.npy"), labels.numpy())
    subprocess.run([tessera, "import", path("r.onnx"), "-o", path("r.tsm"), "--trainable"],
                   check=True)
    out = subprocess.run([tessera, "fine-tune", path("r.tsm"), "--inputs", path("x.npy"),
                          "--labels", path("labels.npy"), "--steps", str(steps), "--batch-size",
                          "32", "--lr", str(lr), "--optimizer", "sgd", "-o", path("tuned.tsm")],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    ours = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("step ")]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    theirs = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        theirs.append(loss.item())
    print("fine-tune losses, tessera:", " ".join(f"{v:.4f}" for v in ours))
    print("fine-tune losses, pytorch:", " ".join(f"{v:.4f}" for v in theirs))
    problems = []
    if len(ours) != steps:
        return [f"fine-tune printed {len(ours)} losses for {steps} steps"]
    if not ours[-1] < ours[0]:
        problems.append(f"fine-tuning did not lower the loss: {ours}")
    gap = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(ours, theirs))
    if gap > 1e-3:
        problems.append(f"fine-tune losses differ from PyTorch's by {gap:.2e} (over 1e-3)")

    os.makedirs(path("calibration"))
    for i in range(2):
        np.save(path(f"calibration/{i}.npy"), x[16 * i:16 * (i + 1)].numpy())
    subprocess.run([tessera, "convert", path("tuned.tsm"), "-o", path("r.tlite"), "--quantize",
                    "int8", "--calibration", path("calibration")], check=True)
    np.save(path("x8.npy"), x[:8].numpy())
    for model_file, result in (("tuned.tsm", "float.npy"), ("r.tlite", "int8.npy")):
        subprocess.run([tessera, "run", path(model_file), "--input", path("x8.npy"), "--output",
                        path(result)], check=True, stdout=subprocess.DEVNULL)
    f, q = np.load(path("float.npy")), np.load(path("int8.npy"))
    error = float(np.max(np.abs(q - f)) / np.max(np.abs(f)))
    agree = int((q.argmax(1) == f.argmax(1)).sum())
    print(f"int8 lite ResNet-18 after fine-tuning: max |int8 - float| / max |float| = "
          f"{error:.3f}, top-1 agreement {agree}/8")
    if error > 0.1:
        problems.append(f"int8 logits differ from the float model's by {error:.3f} (over 0.1)")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tessera", required=True, help="the tessera command")
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, model, x in models():
            problem = check(args.tessera, name, model, x, workdir)
            if problem:
                failures.append(problem)
        failures += fine_tune_and_quantize(args.tessera, workdir)
    for f in failures:
        print("FAILED", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
