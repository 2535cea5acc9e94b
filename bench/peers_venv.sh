# Sourced by the bench scripts: the PyPI peers (PyTorch, TensorFlow) in a virtual
# environment outside the source tree, installed on first use; sets $venv.
venv="${TESSERA_BENCH_VENV:-$HOME/.cache/tessera-bench/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import torch, tensorflow" 2>/dev/null ||
  "$venv/bin/pip" install -q torch tensorflow-cpu numpy
