"""Checks the ONNX models test_onnx_export wrote: each must pass onnx.checker (with full
shape inference), and where ONNX Runtime is installed it must run each model on the saved
inputs and match Tessera's outputs to 1e-5. Exits 77 (skipped) without the onnx package."""
import argparse
import glob
import os
import sys

try:
    import numpy as np
    import onnx
except ImportError as e:
    print(f"skipped: {e} (Debian: python3-onnx)")
    sys.exit(77)

try:
    import onnxruntime as ort
except ImportError:
    ort = None


def arrays(base, kind):
    out = []
    while os.path.exists(f"{base}.{kind}_{len(out)}.npy"):
        out.append(np.load(f"{base}.{kind}_{len(out)}.npy"))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    models = sorted(glob.glob(os.path.join(args.dir, "*.onnx")))
    if not models:
        print(f"no models in {args.dir}")
        return 1
    if ort is None:
        print("ONNX Runtime comparison skipped: onnxruntime is not installed "
              "(pip install onnxruntime; set TESSERA_ONNX_PYTHON to that python)")
    failures = []
    worst = 0.0
    for path in models:
        name = os.path.basename(path)[:-5]
        model = onnx.load(path)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker's errors have several types
            failures.append(f"{name}: onnx.checker: {e}")
            continue
        if ort is None:
            continue
        base = path[:-5]
        inputs, expected = arrays(base, "input"), arrays(base, "expected")
        try:
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feed = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
            got = session.run(None, feed)
        except Exception as e:
            failures.append(f"{name}: onnxruntime: {e}")
            continue
        for k, (g, want) in enumerate(zip(got, expected)):
            g = np.asarray(g)
            if g.shape != want.shape:
                failures.append(f"{name} output {k}: shape {g.shape}, expected {want.shape}")
                continue
            if g.dtype == np.bool_ or want.dtype == np.bool_ or want.size == 0:
                ok = np.array_equal(g, want)
                err = 0.0 if ok else float("inf")
            else:
                diff = np.abs(g.astype(np.float64) - want.astype(np.float64))
                limit = args.tolerance * (1 + np.abs(want.astype(np.float64)))
                err = float((diff / limit).max()) * args.tolerance
                ok = bool((diff <= limit).all())
            worst = max(worst, err)
            if not ok:
                failures.append(f"{name} output {k}: differs from Tessera by up to {err:.3g}")
    checked = "onnx.checker" + (" and ONNX Runtime " + ort.__version__ if ort else "")
    print(f"onnx export: {len(models) - len(failures)} of {len(models)} models pass {checked}"
          + (f" (largest difference {worst:.2g}, relative to 1 + |expected|)" if ort else ""))
    for f in failures:
        print("  FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
