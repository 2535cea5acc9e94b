#!/usr/bin/env python3
"""Writes tests/corpus/onnx/external_data_*.onnx: models whose initializer names external
data by a path that must be refused (or, for the fuzzer's folder, a file that exists or a
link out of it). CI loads them from the corpus folder; scripts/fuzz.sh starts from them.
Run with Debian's python3 (python3-onnx): /usr/bin/python3 tests/onnx/make_external_data_corpus.py
"""
import os

import onnx
from onnx import TensorProto, helper

CASES = {
    "escape": "../../../../etc/passwd",
    "nested_escape": "sub/../../secret.bin",
    "dot_escape": "./.././secret.bin",
    "double_slash": "//etc/passwd",
    "absolute_device": "/dev/zero",
    "nul": "weights.bin\0/../../../etc/passwd",
    "folder": ".",
    "trailing_slash": "weights.bin/",
    "fifo": "fifo",                  # a FIFO in the fuzzer's folder
    "link_out": "out.bin",           # a link to ../secret.bin there
    "link_folder": "up/secret.bin",  # a link to .. there
    "inside": "weights.bin",         # a real file there (missing from the corpus folder)
}


def model(location):
    w = TensorProto()
    w.name = "w"
    w.data_type = TensorProto.FLOAT
    w.dims.append(4)
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key = key
        entry.value = value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def main():
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "onnx")
    for name, location in CASES.items():
        with open(os.path.join(folder, f"external_data_{name}.onnx"), "wb") as f:
            f.write(model(location).SerializeToString())


if __name__ == "__main__":
    main()
