// ONNX export of shape and indexing ops. Sizes that hold unknown-dimension markers (the
// batch in a reshape target) become tensors computed from the graph inputs' shapes.
#include <algorithm>
#include <limits>

#include "exporter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"

namespace tessera::onnx {
namespace {

using graph::Node;

void export_reshape(ExportContext& c, const Node& n) {
  const std::vector<int64_t>& shape = n.attrs.ints("shape");
  bool zero = std::find(shape.begin(), shape.end(), 0) != shape.end();
  bool infer = std::find(shape.begin(), shape.end(), -1) != shape.end();
  // ONNX reads 0 as "copy the input's size" unless allowzero, which forbids -1.
  if (zero && infer) throw ExportUnsupported{"a target shape with both 0 and -1"};
  ::onnx::NodeProto& node = c.add("Reshape", {c.in(n, 0), c.sizes(shape)}, {c.out(n)});
  if (zero) set_attr(node, "allowzero", int64_t{1});
}

void export_permute(ExportContext& c, const Node& n) {
  set_attr(c.add("Transpose", {c.in(n, 0)}, {c.out(n)}), "perm", n.attrs.ints("order"));
}

void export_slice(ExportContext& c, const Node& n) {
  c.add("Slice",
        {c.in(n, 0), c.size(n.attrs.i("start")), c.size(n.attrs.i("stop")),
         c.ints({n.attrs.i("axis")}), c.ints({n.attrs.i("step")})},
        {c.out(n)});
}

void export_flip(ExportContext& c, const Node& n) {
  const std::vector<int64_t>& axes = n.attrs.ints("axes");
  if (axes.empty()) return (void)c.add("Identity", {c.in(n, 0)}, {c.out(n)});
  size_t k = axes.size();
  c.add("Slice",
        {c.in(n, 0), c.ints(std::vector<int64_t>(k, -1)),
         c.ints(std::vector<int64_t>(k, std::numeric_limits<int64_t>::min())), c.ints(axes),
         c.ints(std::vector<int64_t>(k, -1))},
        {c.out(n)});
}

void export_concat(ExportContext& c, const Node& n) {
  std::vector<std::string> inputs;
  for (size_t i = 0; i < n.inputs.size(); ++i) inputs.push_back(c.in(n, i));
  set_attr(c.add("Concat", inputs, {c.out(n)}), "axis", n.attrs.i("axis"));
}

// expand's -1 keeps a size; ONNX Expand broadcasts, where 1 keeps it.
void export_expand(ExportContext& c, const Node& n) {
  std::vector<int64_t> shape = n.attrs.ints("shape");
  for (int64_t& d : shape) d = d == -1 ? 1 : d;
  c.add("Expand", {c.in(n, 0), c.sizes(shape)}, {c.out(n)});
}

void export_fill(ExportContext& c, const Node& n) {
  DType dtype = n.attrs.get<DType>("dtype");
  Scalar v = n.attrs.has("int_value") ? Scalar(n.attrs.i("int_value")) : Scalar(n.attrs.f("value"));
  ::onnx::TensorProto value;
  tensor_to_proto(full({1}, v, dtype), "value", value);
  set_attr(c.add("ConstantOfShape", {c.sizes(n.attrs.ints("shape"))}, {c.out(n)}), "value", value);
}

// Tessera's pads: (before, after) per padded dimension, last dimension first. ONNX's: all
// befores, then all afters, first dimension first.
void export_pad(ExportContext& c, const Node& n) {
  const graph::Value& x = c.input_value(n, 0);
  const std::vector<int64_t>& pads = n.attrs.ints("pads");
  const size_t rank = x.shape.size();
  if (pads.size() % 2 != 0 || pads.size() > 2 * rank) throw ExportUnsupported{"malformed pads"};
  std::vector<int64_t> onnx_pads(2 * rank, 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    size_t d = rank - 1 - i;
    onnx_pads[d] = pads[2 * i];
    onnx_pads[rank + d] = pads[2 * i + 1];
  }
  const std::string& mode = n.attrs.get<std::string>("mode");
  std::vector<std::string> inputs{c.in(n, 0), c.ints(onnx_pads)};
  if (mode == "constant") inputs.push_back(c.scalar(n.attrs.f("value"), x.dtype));
  ::onnx::NodeProto& node = c.add("Pad", inputs, {c.out(n)});
  set_attr(node, "mode", std::string(mode == "replicate" ? "edge" : mode));
}

// ------------------------------------------------------------------ indexing

void export_embedding(ExportContext& c, const Node& n) {
  // mask_padding zeroes the padding row's reads (a gradient graph's form): not written.
  if (n.attrs.b("mask_padding")) throw ExportUnsupported{"embedding with mask_padding"};
  set_attr(c.add("Gather", {c.in(n, 0), c.in(n, 1)}, {c.out(n)}), "axis", int64_t{0});
}

// A 0-d index keeps the axis (size 1) in Tessera; ONNX's Gather would drop it.
void export_index_select(ExportContext& c, const Node& n) {
  std::string index = c.in(n, 1);
  if (c.input_value(n, 1).shape.empty()) index = c.add1("Unsqueeze", {index, c.ints({0})});
  set_attr(c.add("Gather", {c.in(n, 0), index}, {c.out(n)}), "axis", n.attrs.i("axis"));
}

void export_gather(ExportContext& c, const Node& n) {
  set_attr(c.add("GatherElements", {c.in(n, 0), c.in(n, 1)}, {c.out(n)}), "axis",
           n.attrs.i("axis"));
}

void export_scatter(ExportContext& c, const Node& n) {
  ::onnx::NodeProto& node =
      c.add("ScatterElements", {c.in(n, 0), c.in(n, 1), c.in(n, 2)}, {c.out(n)});
  set_attr(node, "axis", n.attrs.i("axis"));
  if (n.op() == std::string("scatter_add")) set_attr(node, "reduction", std::string("add"));
}

void export_one_hot(ExportContext& c, const Node& n) {
  DType dtype = c.value(n.outputs.at(0)).dtype;
  std::string values =
      c.initializer(from_vector(std::vector<int64_t>{0, 1}, {2}).to(dtype), "off_on");
  ::onnx::NodeProto& node =
      c.add("OneHot", {c.in(n, 0), c.size(n.attrs.i("num_classes")), values}, {c.out(n)});
  set_attr(node, "axis", int64_t{-1});
}

void export_topk(ExportContext& c, const Node& n) {
  ::onnx::NodeProto& node =
      c.add("TopK", {c.in(n, 0), c.size(n.attrs.i("k"))}, {c.out(n, 0), c.out(n, 1)});
  set_attr(node, "axis", n.attrs.i("axis"));
  set_attr(node, "largest", int64_t{n.attrs.b("largest") ? 1 : 0});
  set_attr(node, "sorted", int64_t{n.attrs.b("sorted") ? 1 : 0});
}

// nonzero gives [count, rank] like PyTorch; ONNX's NonZero gives [rank, count].
void export_nonzero(ExportContext& c, const Node& n) {
  std::string idx = c.add1("NonZero", {c.in(n, 0)});
  set_attr(c.add("Transpose", {idx}, {c.out(n)}), "perm", std::vector<int64_t>{1, 0});
}

}  // namespace

void add_export_shape(ExportTable& t) {
  t["reshape"] = export_reshape;
  t["permute"] = export_permute;
  t["slice"] = export_slice;
  t["flip"] = export_flip;
  t["concat"] = export_concat;
  t["expand"] = export_expand;
  t["fill"] = export_fill;
  t["pad"] = export_pad;
  t["embedding"] = export_embedding;
  t["index_select"] = export_index_select;
  t["gather"] = export_gather;
  t["scatter"] = export_scatter;
  t["scatter_add"] = export_scatter;
  t["one_hot"] = export_one_hot;
  t["topk"] = export_topk;
  t["nonzero"] = export_nonzero;
}

}  // namespace tessera::onnx
