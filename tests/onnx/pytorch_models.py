#!/usr/bin/env python3
"""PyTorch models through ONNX into Tessera: torchvision's ResNet-18 and MobileNetV2 and a
small Transformer encoder, with random weights, are exported by torch.onnx, imported with
`tessera import`, run with `tessera run`, and compared with PyTorch's outputs (1e-4
relative to the largest output). Exits 77 (ctest: skipped) with a reason where PyTorch or
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
    for f in failures:
        print("FAILED", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
