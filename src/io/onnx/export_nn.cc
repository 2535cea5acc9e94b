// ONNX export of the network ops: convolutions, linear and matmul, pooling, resizing and
// the LSTM. Attributes translate directly except where the layouts differ (LSTM gate
// order, padding lists), which the mappings rearrange.
#include <algorithm>
#include <cmath>

#include "exporter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"

namespace tessera::onnx {
namespace {

using graph::Node;

std::vector<int64_t> twice(const std::vector<int64_t>& v) {
  std::vector<int64_t> out = v;
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

std::vector<int64_t> concat(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Output 0 only: further outputs (pooling indices, LSTM cell states) must be unused.
void require_unused_after_first(ExportContext& c, const Node& n, const char* what) {
  for (size_t i = 1; i < n.outputs.size(); ++i) {
    if (c.used(n.outputs[i])) throw ExportUnsupported{std::string(what) + " is used"};
  }
}

// convDd(x, w[, b]) and convDd_relu; conv_transposeDd(x, w[, b]).
void export_conv(ExportContext& c, const Node& n) {
  std::string op = n.op();
  bool relu = ends_with(op, "_relu"), transpose = op.starts_with("conv_transpose");
  std::vector<std::string> inputs{c.in(n, 0), c.in(n, 1)};
  if (n.inputs.size() > 2) inputs.push_back(c.in(n, 2));
  std::vector<int64_t> pads = concat(n.attrs.ints("padding"), n.attrs.ints("padding_hi"));
  // Negative trailing padding (cropping) appears in gradient graphs; ONNX forbids it.
  if (std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p < 0; }))
    throw ExportUnsupported{"negative padding"};
  std::string result = relu ? c.fresh("conv") : c.out(n);
  ::onnx::NodeProto& node = c.add(transpose ? "ConvTranspose" : "Conv", inputs, {result});
  set_attr(node, "strides", n.attrs.ints("stride"));
  set_attr(node, "pads", pads);
  set_attr(node, "dilations", n.attrs.ints("dilation"));
  set_attr(node, "group", n.attrs.i("groups"));
  if (transpose) set_attr(node, "output_padding", n.attrs.ints("output_padding"));
  if (relu) c.add("Relu", {result}, {c.out(n)});
}

// linear(x, w[, b]) = x w^T + b, then relu when asked.
void export_linear(ExportContext& c, const Node& n) {
  bool relu = n.attrs.get<std::string>("activation") == "relu";
  bool bias = n.inputs.size() > 2;
  std::string result = relu ? c.fresh("linear") : c.out(n);
  if (c.input_value(n, 0).shape.size() == 2) {
    std::vector<std::string> inputs{c.in(n, 0), c.in(n, 1)};
    if (bias) inputs.push_back(c.in(n, 2));
    set_attr(c.add("Gemm", inputs, {result}), "transB", int64_t{1});
  } else {
    ::onnx::NodeProto* t = nullptr;
    std::string wt = c.add1("Transpose", {c.in(n, 1)}, &t);
    set_attr(*t, "perm", std::vector<int64_t>{1, 0});
    if (bias) {
      c.add("Add", {c.add1("MatMul", {c.in(n, 0), wt}), c.in(n, 2)}, {result});
    } else {
      c.add("MatMul", {c.in(n, 0), wt}, {result});
    }
  }
  if (relu) c.add("Relu", {result}, {c.out(n)});
}

void export_matmul(ExportContext& c, const Node& n) {
  c.add("MatMul", {c.in(n, 0), c.in(n, 1)}, {c.out(n)});
}

// ------------------------------------------------------------------ pooling

void export_pool(ExportContext& c, const Node& n) {
  std::string op = n.op();
  require_unused_after_first(c, n, "the pooling indices output");
  if (op.starts_with("max_pool2d_2x2")) {
    ::onnx::NodeProto& node = c.add("MaxPool", {c.in(n, 0)}, {c.out(n)});
    set_attr(node, "kernel_shape", std::vector<int64_t>{2, 2});
    set_attr(node, "strides", std::vector<int64_t>{2, 2});
    return;
  }
  bool max = op.starts_with("max_pool");
  const std::vector<int64_t>& dilation = n.attrs.ints("dilation");
  bool dilated = std::any_of(dilation.begin(), dilation.end(), [](int64_t d) { return d != 1; });
  if (!max && dilated) throw ExportUnsupported{"AveragePool has no dilation before opset 19"};
  ::onnx::NodeProto& node = c.add(max ? "MaxPool" : "AveragePool", {c.in(n, 0)}, {c.out(n)});
  set_attr(node, "kernel_shape", n.attrs.ints("kernel_size"));
  set_attr(node, "strides", n.attrs.ints("stride"));
  set_attr(node, "pads", twice(n.attrs.ints("padding")));
  set_attr(node, "ceil_mode", int64_t{n.attrs.b("ceil_mode") ? 1 : 0});
  if (max) set_attr(node, "dilations", dilation);
  if (!max) set_attr(node, "count_include_pad", int64_t{n.attrs.b("count_include_pad") ? 1 : 0});
}

// Adaptive pooling: global pooling for output size 1, a plain pool where the sizes divide,
// else (average only) a product with a pooling matrix per spatial axis, which gives each
// output the mean over its window [floor(i*in/out), ceil((i+1)*in/out)).
void export_adaptive_pool(ExportContext& c, const Node& n) {
  bool max = std::string(n.op()).starts_with("adaptive_max");
  require_unused_after_first(c, n, "the pooling indices output");
  const graph::Value& x = c.input_value(n, 0);
  const std::vector<int64_t>& out = n.attrs.ints("output_size");
  const size_t spatial = out.size();
  if (x.shape.size() != spatial + 2) throw ExportUnsupported{"unexpected input rank"};
  std::vector<int64_t> in(x.shape.end() - static_cast<int64_t>(spatial), x.shape.end());
  if (std::all_of(out.begin(), out.end(), [](int64_t o) { return o == 1; })) {
    c.add(max ? "GlobalMaxPool" : "GlobalAveragePool", {c.in(n, 0)}, {c.out(n)});
    return;
  }
  bool known = std::all_of(in.begin(), in.end(), [](int64_t d) { return d > 0; });
  if (!known) throw ExportUnsupported{"adaptive pooling needs known spatial sizes"};
  bool divides = true;
  for (size_t d = 0; d < spatial; ++d) divides = divides && out[d] > 0 && in[d] % out[d] == 0;
  if (divides) {
    std::vector<int64_t> kernel(spatial);
    for (size_t d = 0; d < spatial; ++d) kernel[d] = in[d] / out[d];
    ::onnx::NodeProto& node = c.add(max ? "MaxPool" : "AveragePool", {c.in(n, 0)}, {c.out(n)});
    set_attr(node, "kernel_shape", kernel);
    set_attr(node, "strides", kernel);
    return;
  }
  if (max) throw ExportUnsupported{"adaptive max pooling with sizes that do not divide"};
  // Width first: x [.., H, W] @ Pw [W, ow]; then height: Ph [oh, H] @ y [.., H, ow].
  auto matrix = [&](int64_t size, int64_t outputs, bool transposed) {
    Tensor m = zeros(transposed ? Shape{size, outputs} : Shape{outputs, size}, x.dtype);
    Tensor f = zeros(m.shape(), DType::Float64);
    double* p = f.data<double>();
    for (int64_t o = 0; o < outputs; ++o) {
      int64_t lo = o * size / outputs, hi = ((o + 1) * size + outputs - 1) / outputs;
      for (int64_t i = lo; i < hi; ++i) {
        p[transposed ? i * outputs + o : o * size + i] = 1.0 / static_cast<double>(hi - lo);
      }
    }
    return f.to(x.dtype);
  };
  std::string y =
      c.add1("MatMul",
             {c.in(n, 0), c.initializer(matrix(in.back(), out.back(), true), "adaptive_pool_w")});
  if (spatial == 1) return (void)c.add("Identity", {y}, {c.out(n)});
  c.add("MatMul", {c.initializer(matrix(in[0], out[0], false), "adaptive_pool_h"), y}, {c.out(n)});
}

// upsample_{nearest,bilinear}2d -> Resize. Sizes come from the attribute unless the op was
// given a ratio that differs from in/out (a scale factor), which Resize then receives.
void export_upsample(ExportContext& c, const Node& n) {
  bool bilinear = n.op() == std::string("upsample_bilinear2d");
  bool align = n.attrs.b("align_corners");
  const graph::Value& x = c.input_value(n, 0);
  const std::vector<int64_t>& size = n.attrs.ints("size");
  double ratio[2] = {n.attrs.f("ratio_h"), n.attrs.f("ratio_w")};
  bool use_scales = false;
  for (int d = 0; d < 2; ++d) {
    int64_t in = x.shape[static_cast<size_t>(2 + d)];
    if (ratio[d] <= 0 || (bilinear && align)) continue;
    if (in < 0) throw ExportUnsupported{"a scale factor on a dimension of unknown size"};
    double natural = static_cast<double>(in) / static_cast<double>(size[static_cast<size_t>(d)]);
    if (std::fabs(ratio[d] - natural) > 1e-12 * natural) use_scales = true;
  }
  std::vector<std::string> inputs{c.in(n, 0), ""};
  if (use_scales) {
    for (int d = 0; d < 2; ++d) {
      int64_t in = x.shape[static_cast<size_t>(2 + d)];
      if (static_cast<int64_t>(std::floor(static_cast<double>(in) / ratio[d])) !=
          size[static_cast<size_t>(d)]) {
        throw ExportUnsupported{"the output size does not follow from the scale factor"};
      }
    }
    Tensor scales = from_vector(std::vector<float>{1.0f, 1.0f, static_cast<float>(1 / ratio[0]),
                                                   static_cast<float>(1 / ratio[1])},
                                {4});
    inputs.push_back(c.initializer(scales, "scales"));
  } else {
    ::onnx::NodeProto* shape = nullptr;
    std::string leading = c.add1("Shape", {c.in(n, 0)}, &shape);
    set_attr(*shape, "start", int64_t{0});
    set_attr(*shape, "end", int64_t{2});
    ::onnx::NodeProto* cat = nullptr;
    std::string sizes = c.add1("Concat", {leading, c.sizes(size)}, &cat);
    set_attr(*cat, "axis", int64_t{0});
    inputs.push_back("");  // no scales
    inputs.push_back(sizes);
  }
  ::onnx::NodeProto& node = c.add("Resize", inputs, {c.out(n)});
  set_attr(node, "mode", std::string(bilinear ? "linear" : "nearest"));
  if (bilinear) {
    set_attr(node, "coordinate_transformation_mode",
             std::string(align ? "align_corners" : "half_pixel"));
  } else {
    set_attr(node, "coordinate_transformation_mode", std::string("asymmetric"));
    set_attr(node, "nearest_mode", std::string("floor"));
  }
}

// lstm_sequence(x [T,B,I], h0 [B,H], c0 [B,H], w_ih [4H,I], w_hh [4H,H][, b_ih, b_hh]) ->
// hidden states [T,B,H] (and cell states, which ONNX's LSTM does not return per step).
// PyTorch's gate order (i, f, g, o) becomes ONNX's (i, o, f, c) by a row gather.
void export_lstm(ExportContext& c, const Node& n) {
  require_unused_after_first(c, n, "the per-step cell state output");
  const graph::Value& w_hh = c.input_value(n, 4);
  if (w_hh.shape.size() != 2 || w_hh.shape[1] <= 0) throw ExportUnsupported{"unexpected weights"};
  const int64_t hidden = w_hh.shape[1];
  std::vector<int64_t> rows;
  for (int64_t block : {0, 3, 1, 2}) {
    for (int64_t r = 0; r < hidden; ++r) rows.push_back(block * hidden + r);
  }
  std::string order = c.ints(rows), first_axis = c.ints({0});
  auto reorder = [&](size_t i) { return c.add1("Gather", {c.in(n, i), order}); };
  auto unsqueeze = [&](const std::string& t) { return c.add1("Unsqueeze", {t, first_axis}); };
  std::string w = unsqueeze(reorder(3)), r = unsqueeze(reorder(4)), b;
  if (n.inputs.size() >= 7) {
    ::onnx::NodeProto* cat = nullptr;
    std::string both = c.add1("Concat", {reorder(5), reorder(6)}, &cat);
    set_attr(*cat, "axis", int64_t{0});
    b = unsqueeze(both);
  }
  std::string y = c.fresh("lstm_y");
  ::onnx::NodeProto& node =
      c.add("LSTM", {c.in(n, 0), w, r, b, "", unsqueeze(c.in(n, 1)), unsqueeze(c.in(n, 2))}, {y});
  set_attr(node, "hidden_size", hidden);
  set_attr(node, "direction", std::string(n.attrs.b("reverse") ? "reverse" : "forward"));
  c.add("Squeeze", {y, c.ints({1})}, {c.out(n)});
}

}  // namespace

void add_export_nn(ExportTable& t) {
  for (const char* op : {"conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu",
                         "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}) {
    t[op] = export_conv;
  }
  t["linear"] = export_linear;
  t["matmul"] = export_matmul;
  for (const char* op : {"max_pool1d", "max_pool2d", "max_pool2d_2x2", "max_pool2d_2x2_values",
                         "avg_pool1d", "avg_pool2d"}) {
    t[op] = export_pool;
  }
  for (const char* op : {"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
                         "adaptive_max_pool2d"}) {
    t[op] = export_adaptive_pool;
  }
  t["upsample_nearest2d"] = export_upsample;
  t["upsample_bilinear2d"] = export_upsample;
  t["lstm_sequence"] = export_lstm;
}

}  // namespace tessera::onnx
