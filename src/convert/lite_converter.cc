// Graph -> lite model (see lite_converter.h). Each graph node is lowered by one small
// function; values remember where their lite tensor is and whether it is NHWC.
#include "tessera/convert/lite_converter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "../kernels/cpu/simd.h"
#include "lite_model_generated.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/core/half.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/saved_model.h"
#include "tessera/io/atomic_file.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::convert {
namespace {

namespace fb = tessera::lite::schema;
using graph::Graph;
using graph::Node;
using graph::Value;
using graph::ValueKind;

// The version written in every lite model; loaders accept it and older.
constexpr uint32_t kLiteVersion = 1;

// A node the converter cannot lower, with the reason.
struct Unsupported {
  std::string reason;
};

struct LiteTensor {
  std::string name;
  fb::DType dtype = fb::DType_Float32;
  std::vector<int32_t> shape;
  int value = -1;  // the graph value it holds (in any layout), for calibration ranges
  bool constant = false;
  std::vector<float> values;    // a float32 constant
  std::vector<int8_t> int8s;    // an int8 constant (quantized weights)
  std::vector<int32_t> int32s;  // an int32 constant (quantized bias)
  std::vector<uint16_t> halfs;  // a float16 constant (weights)
  std::vector<float> scales;    // quantization: per tensor (one) or per channel
  std::vector<int64_t> zero_points;
  int quant_axis = -1;
};

struct LiteOp {
  fb::OpCode code;
  std::vector<int> inputs, outputs;
  // Builds the operator's options table (none when empty).
  std::function<std::pair<fb::OperatorOptions, flatbuffers::Offset<void>>(
      flatbuffers::FlatBufferBuilder&)>
      options;
};

// Where a graph value lives in the lite model.
struct Placed {
  int tensor = -1;
  bool nhwc = false;  // a 4-d activation stored NHWC
};

const int kToNhwc[] = {0, 2, 3, 1}, kToNchw[] = {0, 3, 1, 2};
// A constant's NCHW data ([N, C, H, W]) reordered to NHWC.
std::vector<float> nchw_to_nhwc(const std::vector<float>& d, const std::vector<int32_t>& s) {
  std::vector<float> out(d.size());
  int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          out[static_cast<size_t>(((n * H + h) * W + w) * C + c)] =
              d[static_cast<size_t>(((n * C + c) * H + h) * W + w)];
  return out;
}

// An NCHW axis's position in NHWC.
int nhwc_axis(int64_t axis) { return static_cast<int>(axis == 0 ? 0 : axis == 1 ? 3 : axis - 1); }

class Lowering {
 public:
  Lowering(const Graph& g, const LiteOptions& o) : g_(g), options_(o), placed_(g.values.size()) {
    if (g.symbols.size() > 1) {
      throw Error("convert", "the graph has " + std::to_string(g.symbols.size()) +
                                 " unknown dimensions; lite models need one (the batch) at most");
    }
    check(o.batch >= 1, "convert", "batch must be positive, got ", o.batch);
  }

  LiteModel run() {
    for (int id : g_.inputs) {
      const Value& v = g_.values[static_cast<size_t>(id)];
      check(v.dtype == DType::Float32 || v.dtype == DType::Int32 || v.dtype == DType::Int64,
            "convert", "input '", v.name, "' is ", dtype_name(v.dtype),
            "; lite models take float32 inputs, or int32/int64 indices");
      placed_[static_cast<size_t>(id)] = {add_tensor(v.name, shape_of(id), id), false};
      if (v.dtype != DType::Float32) {
        tensors_.back().dtype = v.dtype == DType::Int32 ? fb::DType_Int32 : fb::DType_Int64;
      }
      inputs_.push_back(placed_[static_cast<size_t>(id)].tensor);
    }
    std::vector<std::string> problems;
    std::vector<char> failed(g_.values.size(), 0);  // values of nodes that could not lower
    for (size_t n = 0; n < g_.nodes.size(); ++n) {
      const Node& node = g_.nodes[n];
      bool after_failure = std::any_of(node.inputs.begin(), node.inputs.end(),
                                       [&](int id) { return failed[static_cast<size_t>(id)]; });
      try {
        if (!after_failure) lower(static_cast<int>(n));
      } catch (const Unsupported& u) {
        problems.push_back(describe(static_cast<int>(n)) + ": " + u.reason);
        after_failure = true;
      }
      if (after_failure) {
        for (int id : node.outputs) failed[static_cast<size_t>(id)] = 1;
      }
    }
    if (!problems.empty()) {
      std::ostringstream os;
      os << problems.size() << " of " << g_.nodes.size()
         << " nodes have no lite form (nodes that only read their results are not listed):";
      for (const std::string& p : problems) os << "\n  " << p;
      throw Error("convert", os.str());
    }
    for (int id : g_.outputs) outputs_.push_back(plain(id));
    if (options_.quantization == Quantization::int8) quantize_int8(calibrate());
    if (options_.quantization == Quantization::float16 ||
        options_.quantization == Quantization::dynamic_int8) {
      compress_weights(options_.quantization);
    }
    return finish();
  }

 private:
  // ---- shapes and tensors ----

  std::vector<int32_t> shape_of(int id) const {
    std::vector<int32_t> out;
    for (int64_t d : value(id).shape) {
      int64_t size = d == graph::kUnknownDim ? options_.batch : d;
      check(size >= 0 && size < (int64_t{1} << 31), "convert", "dimension ", size, " of value %",
            id, " does not fit a lite model");
      out.push_back(static_cast<int32_t>(size));
    }
    return out;
  }

  int add_tensor(const std::string& name, std::vector<int32_t> shape, int value = -1) {
    LiteTensor t;
    t.name = name;
    t.shape = std::move(shape);
    t.value = value;
    tensors_.push_back(std::move(t));
    return static_cast<int>(tensors_.size()) - 1;
  }

  int add_constant(const std::string& name, std::vector<float> values, std::vector<int32_t> shape) {
    int t = add_tensor(name, std::move(shape));
    tensors_[static_cast<size_t>(t)].constant = true;
    tensors_[static_cast<size_t>(t)].values = std::move(values);
    return t;
  }

  const Value& value(int id) const { return g_.values[static_cast<size_t>(id)]; }
  bool is_constant(int id) const {
    ValueKind k = value(id).kind;
    return k == ValueKind::constant || k == ValueKind::variable;
  }
  std::vector<float> constant_data(int id) const {
    if (!is_constant(id))
      throw Unsupported{"operand %" + std::to_string(id) +
                        " must be a constant (weights computed at run time "
                        "are not supported)"};
    NoGradGuard no_grad;
    return value(id).data.to(DType::Float32).contiguous().to_vector<float>();
  }

  // The value as a lite tensor in the graph's own (NCHW) order.
  int plain(int id) {
    if (auto it = nhwc_flat_.find(id);
        it != nhwc_flat_.end() && placed_[static_cast<size_t>(id)].tensor < 0) {
      // A flatten of an NHWC value read in the graph's order after all: transpose, reshape.
      int t = add_tensor(value(id).name, shape_of(id), id);
      ops_.push_back({fb::OpCode_Reshape, {plain(it->second)}, {t}, nullptr});
      placed_[static_cast<size_t>(id)] = {t, false};
    }
    Placed& p = placed_[static_cast<size_t>(id)];
    if (p.tensor < 0 && is_constant(id)) {
      p = {add_constant(value(id).name, constant_data(id), shape_of(id)), false};
    }
    if (p.tensor < 0) throw Unsupported{"operand %" + std::to_string(id) + " has no lite tensor"};
    if (!p.nhwc) return p.tensor;
    auto it = nchw_copy_.find(id);
    if (it != nchw_copy_.end()) return it->second;
    int t = add_tensor(value(id).name + "_nchw", shape_of(id), id);
    add_transpose(p.tensor, t, kToNchw);
    return nchw_copy_[id] = t;
  }

  // A 4-d value as an NHWC lite tensor.
  int nhwc(int id) {
    Placed& p = placed_[static_cast<size_t>(id)];
    if (p.nhwc) return p.tensor;
    std::vector<int32_t> s = shape_of(id);
    if (is_constant(id)) {
      return add_constant(value(id).name + "_nhwc", nchw_to_nhwc(constant_data(id), s),
                          {s[0], s[2], s[3], s[1]});
    }
    auto it = nhwc_copy_.find(id);
    if (it != nhwc_copy_.end()) return it->second;
    int t = add_tensor(value(id).name + "_nhwc", {s[0], s[2], s[3], s[1]}, id);
    add_transpose(plain(id), t, kToNhwc);
    return nhwc_copy_[id] = t;
  }

  void add_transpose(int in, int out, const int* perm) {
    std::vector<int32_t> p(perm, perm + 4);
    // Moving only axes of size 1 (NCHW <-> NHWC with one channel) keeps the bytes in place.
    const std::vector<int32_t>& shape = tensors_[static_cast<size_t>(in)].shape;
    int last = -1;
    bool in_order = true;
    for (int a : p) {
      if (shape[static_cast<size_t>(a)] == 1) continue;
      in_order = in_order && a > last;
      last = a;
    }
    if (in_order) {
      ops_.push_back({fb::OpCode_Reshape, {in}, {out}, nullptr});
      return;
    }
    ops_.push_back({fb::OpCode_Transpose, {in}, {out}, [p](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_TransposeOptions,
                                            fb::CreateTransposeOptionsDirect(b, &p).Union());
                    }});
    ++transposes_;
  }

  // The node's output `i` as a new lite tensor (NHWC when asked).
  int output(const Node& n, size_t i, bool as_nhwc) {
    int id = n.outputs[i];
    std::vector<int32_t> s = shape_of(id);
    if (as_nhwc) s = {s[0], s[2], s[3], s[1]};
    int t = add_tensor(value(id).name, s, id);
    placed_[static_cast<size_t>(id)] = {t, as_nhwc};
    return t;
  }

  // How many node inputs and graph outputs read value `id`.
  int consumers(int id) const {
    int count = static_cast<int>(std::count(g_.outputs.begin(), g_.outputs.end(), id));
    for (const Node& n : g_.nodes)
      count += static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), id));
    return count;
  }

  bool used(int id) const {
    for (const Node& n : g_.nodes) {
      if (std::find(n.inputs.begin(), n.inputs.end(), id) != n.inputs.end()) return true;
    }
    return std::find(g_.outputs.begin(), g_.outputs.end(), id) != g_.outputs.end();
  }

  std::string describe(int index) const {
    const Node& n = g_.nodes[static_cast<size_t>(index)];
    std::ostringstream os;
    os << "node " << index << " " << n.op() << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Value& v = value(n.inputs[i]);
      os << (i ? ", " : "") << graph::format_type(v.dtype, v.shape);
    }
    os << ")";
    return os.str();
  }

  // ---- lowering, one function per kind of node ----

  void lower(int index) {
    const Node& n = g_.nodes[static_cast<size_t>(index)];
    for (int id : n.outputs) {
      if (value(id).dtype != DType::Float32 && used(id)) {
        throw Unsupported{std::string("produces ") + dtype_name(value(id).dtype) +
                          " (lite kernels here are float32)"};
      }
    }
    std::string op = n.op();
    if (op == "conv2d" || op == "conv2d_relu") return lower_conv(n, op == "conv2d_relu");
    if (op == "conv_transpose2d") return lower_transpose_conv(n);
    if (op == "embedding") return lower_embedding(n);
    if (op == "max_pool2d_2x2" || op == "max_pool2d_2x2_values" || op == "max_pool2d" ||
        op == "avg_pool2d")
      return lower_pool(n);
    if (op == "adaptive_avg_pool2d") return lower_global_pool(n);
    if (op == "linear") return lower_linear(n);
    if (op == "reshape") return lower_reshape(n);
    if (op == "slice") return lower_slice(n);
    if (op == "lstm_sequence") return lower_lstm(n);
    if (op == "permute") return lower_permute(n);
    if (op == "softmax") return lower_softmax(n);
    if (op == "concat") return lower_concat(n);
    if (op == "mean" || op == "sum") return lower_mean(n, op == "sum");
    if (op == "pad") return lower_pad(n);
    if (op == "upsample_nearest2d" || op == "upsample_bilinear2d") {
      return lower_resize(n, op == "upsample_bilinear2d");
    }
    if (auto code = unary_code(op)) return add_unary(*code, n.inputs[0], n.outputs[0]);
    if (auto code = binary_code(op))
      return lower_binary(*code, n.inputs[0], n.inputs[1], n.outputs[0]);
    throw Unsupported{"no lite operator for it"};
  }

  static std::optional<fb::OpCode> unary_code(const std::string& op) {
    static const std::map<std::string, fb::OpCode> codes = {{"relu", fb::OpCode_Relu},
                                                            {"relu6", fb::OpCode_Relu6},
                                                            {"sigmoid", fb::OpCode_Logistic},
                                                            {"tanh", fb::OpCode_Tanh},
                                                            {"hard_swish", fb::OpCode_HardSwish},
                                                            {"neg", fb::OpCode_Neg},
                                                            {"abs", fb::OpCode_Abs},
                                                            {"exp", fb::OpCode_Exp},
                                                            {"sqrt", fb::OpCode_Sqrt},
                                                            {"square", fb::OpCode_Square},
                                                            {"silu", fb::OpCode_Silu}};
    auto it = codes.find(op);
    return it == codes.end() ? std::nullopt : std::optional(it->second);
  }

  static std::optional<fb::OpCode> binary_code(const std::string& op) {
    static const std::map<std::string, fb::OpCode> codes = {
        {"add", fb::OpCode_Add}, {"sub", fb::OpCode_Sub},         {"mul", fb::OpCode_Mul},
        {"div", fb::OpCode_Div}, {"maximum", fb::OpCode_Maximum}, {"minimum", fb::OpCode_Minimum}};
    auto it = codes.find(op);
    return it == codes.end() ? std::nullopt : std::optional(it->second);
  }

  static std::vector<int64_t> pair_attr(const Node& n, const char* name, int64_t fallback) {
    if (!n.attrs.has(name)) return {fallback, fallback};
    std::vector<int64_t> v = n.attrs.ints(name);
    if (v.size() == 1) v.push_back(v[0]);
    if (v.size() != 2) throw Unsupported{std::string(name) + " needs 2 values"};
    return v;
  }

  void lower_conv(const Node& n, bool relu) {
    const Value& w = value(n.inputs[1]);
    if (w.shape.size() != 4) throw Unsupported{"only 2-d convolutions"};
    auto stride = pair_attr(n, "stride", 1), pad = pair_attr(n, "padding", 0),
         dil = pair_attr(n, "dilation", 1), out_pad = pair_attr(n, "output_padding", 0);
    auto pad_hi = n.attrs.has("padding_hi") ? pair_attr(n, "padding_hi", 0) : pad;
    if (out_pad[0] || out_pad[1]) throw Unsupported{"transposed convolution"};
    int64_t groups = n.attrs.has("groups") ? n.attrs.i("groups") : 1;
    int64_t O = w.shape[0], I = w.shape[1], KH = w.shape[2], KW = w.shape[3];
    int64_t C = value(n.inputs[0]).shape[1];
    std::vector<float> wd = constant_data(n.inputs[1]), lite_w(wd.size());
    bool depthwise = groups > 1;
    if (depthwise && !(groups == C && I == 1 && O % C == 0)) {
      throw Unsupported{"grouped convolution (only depthwise: groups == channels)"};
    }
    // OIHW -> HWIO (depthwise: O1HW -> HWO).
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i)
        for (int64_t h = 0; h < KH; ++h)
          for (int64_t k = 0; k < KW; ++k)
            lite_w[static_cast<size_t>(((h * KW + k) * I + i) * O + o)] =
                wd[static_cast<size_t>(((o * I + i) * KH + h) * KW + k)];
    std::vector<int32_t> wshape =
        depthwise ? std::vector<int32_t>{int32_t(KH), int32_t(KW), int32_t(O)}
                  : std::vector<int32_t>{int32_t(KH), int32_t(KW), int32_t(I), int32_t(O)};
    std::vector<int> ins{nhwc(n.inputs[0]), add_constant(w.name, lite_w, wshape)};
    if (n.inputs.size() > 2) ins.push_back(plain(n.inputs[2]));
    int out = output(n, 0, true);
    auto act = relu ? fb::Activation_Relu : fb::Activation_None;
    auto pool = std::make_shared<bool>(false);  // set when a 2x2 max pool is fused in
    conv_outputs_[n.outputs[0]] = {out, pool};
    ops_.push_back({depthwise ? fb::OpCode_DepthwiseConv2D : fb::OpCode_Conv2D,
                    ins,
                    {out},
                    [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_ConvOptions,
                          fb::CreateConvOptions(b, int(stride[0]), int(stride[1]), int(pad[0]),
                                                int(pad[1]), int(pad_hi[0]), int(pad_hi[1]),
                                                int(dil[0]), int(dil[1]), act, *pool)
                              .Union());
                    }});
  }

  // Fuses a 2x2 max pool of stride 2 into the convolution that makes its only input: the
  // convolution pools its rows as it makes them (ConvOptions.max_pool_2x2), and its output
  // tensor becomes the pooled one.
  bool fuse_max_pool(const Node& n) {
    auto it = conv_outputs_.find(n.inputs[0]);
    if (it == conv_outputs_.end() || consumers(n.inputs[0]) != 1) return false;
    const auto& [tensor, pool] = it->second;
    std::vector<int32_t> s = shape_of(n.outputs[0]);
    LiteTensor& t = tensors_[static_cast<size_t>(tensor)];
    t.shape = {s[0], s[2], s[3], s[1]};
    t.name = value(n.outputs[0]).name;
    t.value = n.outputs[0];  // calibration: the pooled range
    placed_[static_cast<size_t>(n.outputs[0])] = {tensor, true};
    *pool = true;
    return true;
  }

  void lower_embedding(const Node& n) {
    const Value& ids = value(n.inputs[1]);
    if (ids.kind != ValueKind::input) {
      throw Unsupported{"indices must be a model input (int32 or int64)"};
    }
    int table = plain(n.inputs[0]);
    int out = output(n, 0, false);
    ops_.push_back({fb::OpCode_EmbeddingLookup, {plain(n.inputs[1]), table}, {out}, nullptr});
  }

  void lower_transpose_conv(const Node& n) {
    const Value& w = value(n.inputs[1]);
    if (w.shape.size() != 4) throw Unsupported{"only 2-d transposed convolutions"};
    if (n.attrs.has("groups") && n.attrs.i("groups") != 1) {
      throw Unsupported{"grouped transposed convolution"};
    }
    auto stride = pair_attr(n, "stride", 1), pad = pair_attr(n, "padding", 0),
         dil = pair_attr(n, "dilation", 1);
    // [I, O, KH, KW] -> [KH, KW, I, O]
    int64_t I = w.shape[0], O = w.shape[1], KH = w.shape[2], KW = w.shape[3];
    std::vector<float> wd = constant_data(n.inputs[1]), lite_w(wd.size());
    for (int64_t i = 0; i < I; ++i)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t h = 0; h < KH; ++h)
          for (int64_t k = 0; k < KW; ++k)
            lite_w[static_cast<size_t>(((h * KW + k) * I + i) * O + o)] =
                wd[static_cast<size_t>(((i * O + o) * KH + h) * KW + k)];
    std::vector<int> ins{
        nhwc(n.inputs[0]),
        add_constant(w.name, lite_w, {int32_t(KH), int32_t(KW), int32_t(I), int32_t(O)})};
    if (n.inputs.size() > 2) ins.push_back(plain(n.inputs[2]));
    int out = output(n, 0, true);
    ops_.push_back({fb::OpCode_TransposeConv2D, ins, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_ConvOptions,
                          fb::CreateConvOptions(b, int(stride[0]), int(stride[1]), int(pad[0]),
                                                int(pad[1]), 0, 0, int(dil[0]), int(dil[1]))
                              .Union());
                    }});
  }

  void lower_pool(const Node& n) {
    std::string op = n.op();
    if (n.outputs.size() > 1 && used(n.outputs[1])) {
      throw Unsupported{"the argmax indices of max pooling are read"};
    }
    bool max = op != "avg_pool2d";
    std::vector<int64_t> k{2, 2}, s{2, 2}, p{0, 0};
    bool include_pad = false;
    if (!op.starts_with("max_pool2d_2x2")) {
      k = pair_attr(n, "kernel_size", 1);
      s = pair_attr(n, "stride", 1);
      p = pair_attr(n, "padding", 0);
      auto d = pair_attr(n, "dilation", 1);
      if (d[0] != 1 || d[1] != 1) throw Unsupported{"dilated pooling"};
      include_pad = n.attrs.has("count_include_pad") && n.attrs.b("count_include_pad");
    }
    std::vector<int32_t> in = shape_of(n.inputs[0]), out_shape = shape_of(n.outputs[0]);
    // Bottom and right padding that give the graph's output size (ceil_mode included).
    int64_t hi_h = (out_shape[2] - 1) * s[0] + k[0] - in[2] - p[0];
    int64_t hi_w = (out_shape[3] - 1) * s[1] + k[1] - in[3] - p[1];
    hi_h = std::max<int64_t>(hi_h, 0), hi_w = std::max<int64_t>(hi_w, 0);
    if (!max && include_pad && (hi_h != p[0] || hi_w != p[1])) {
      // The divisor would count the ceil_mode extension as padding.
      throw Unsupported{"average pooling that counts padding, with ceil_mode"};
    }
    if (max && k == std::vector<int64_t>{2, 2} && s == k && p == std::vector<int64_t>{0, 0} &&
        hi_h == 0 && hi_w == 0 && fuse_max_pool(n)) {
      return;
    }
    int x = nhwc(n.inputs[0]);
    int out = output(n, 0, true);
    ops_.push_back({max ? fb::OpCode_MaxPool2D : fb::OpCode_AveragePool2D,
                    {x},
                    {out},
                    [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_PoolOptions,
                          fb::CreatePoolOptions(b, int(k[0]), int(k[1]), int(s[0]), int(s[1]),
                                                int(p[0]), int(p[1]), int(hi_h), int(hi_w),
                                                !include_pad)
                              .Union());
                    }});
  }

  void lower_global_pool(const Node& n) {
    if (n.attrs.ints("output_size") != std::vector<int64_t>{1, 1}) {
      throw Unsupported{"adaptive pooling to sizes other than 1x1"};
    }
    int x = nhwc(n.inputs[0]);
    int out = output(n, 0, true);
    add_mean(x, out, {1, 2}, true);
  }

  void add_mean(int in, int out, std::vector<int32_t> axes, bool keep,
                fb::OpCode code = fb::OpCode_Mean) {
    ops_.push_back({code, {in}, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_MeanOptions,
                                            fb::CreateMeanOptionsDirect(b, &axes, keep).Union());
                    }});
  }

  void add_fc(int x, int w, int bias, int out, fb::Activation act) {
    std::vector<int> ins{x, w};
    if (bias >= 0) ins.push_back(bias);
    ops_.push_back({fb::OpCode_FullyConnected, ins, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_FullyConnectedOptions,
                                            fb::CreateFullyConnectedOptions(b, act).Union());
                    }});
  }

  void lower_linear(const Node& n) {
    std::string act = n.attrs.has("activation") ? n.attrs.get<std::string>("activation") : "";
    if (!act.empty() && act != "relu") throw Unsupported{"linear with activation " + act};
    if (!is_constant(n.inputs[1])) throw Unsupported{"weights computed at run time"};
    int x, w;
    if (auto it = nhwc_flat_.find(n.inputs[0]); it != nhwc_flat_.end()) {
      // The input is an NHWC value flattened as it lies: reorder the weights' columns from
      // the graph's (c, h, w) order to (h, w, c) instead of transposing every run.
      x = flat_of_nhwc(it->second);
      std::vector<int32_t> s4 = shape_of(it->second), ws = shape_of(n.inputs[1]);
      const int64_t C = s4[1], H = s4[2], W = s4[3], O = ws[0], I = C * H * W;
      std::vector<float> wd = constant_data(n.inputs[1]), permuted(wd.size());
      for (int64_t o = 0; o < O; ++o)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t k = 0; k < W; ++k)
              permuted[static_cast<size_t>(o * I + (h * W + k) * C + c)] =
                  wd[static_cast<size_t>(o * I + (c * H + h) * W + k)];
      w = add_constant(value(n.inputs[1]).name + "_nhwc", std::move(permuted), ws);
    } else {
      x = plain(n.inputs[0]);
      w = plain(n.inputs[1]);
    }
    int bias = n.inputs.size() > 2 ? plain(n.inputs[2]) : -1;
    add_fc(x, w, bias, output(n, 0, false),
           act == "relu" ? fb::Activation_Relu : fb::Activation_None);
  }

  // An NHWC value flattened as it lies ([N, H * W * C]), made once.
  int flat_of_nhwc(int id) {
    auto it = nhwc_flattened_.find(id);
    if (it != nhwc_flattened_.end()) return it->second;
    std::vector<int32_t> s = shape_of(id);
    int t = add_tensor(value(id).name + "_flat", {s[0], s[1] * s[2] * s[3]}, id);
    ops_.push_back({fb::OpCode_Reshape, {nhwc(id)}, {t}, nullptr});
    return nhwc_flattened_[id] = t;
  }

  void lower_reshape(const Node& n) {
    const Value &in = value(n.inputs[0]), &out_value = value(n.outputs[0]);
    if (is_nhwc(n.inputs[0]) && in.shape.size() == 4 && out_value.shape.size() == 2 &&
        out_value.shape[0] == in.shape[0]) {
      // A flatten of an NHWC activation: its consumers decide (see lower_linear, plain()).
      nhwc_flat_[n.outputs[0]] = n.inputs[0];
      return;
    }
    int x = plain(n.inputs[0]);
    int out = output(n, 0, false);
    ops_.push_back({fb::OpCode_Reshape, {x}, {out}, nullptr});
  }

  void lower_slice(const Node& n) {
    const int64_t rank = static_cast<int64_t>(value(n.inputs[0]).shape.size());
    int64_t axis = n.attrs.i("axis"), start = n.attrs.i("start"), step = n.attrs.i("step");
    if (axis < 0) axis += rank;
    const int64_t size = value(n.inputs[0]).shape[static_cast<size_t>(axis)];
    if (size == graph::kUnknownDim) throw Unsupported{"slices the unknown (batch) dimension"};
    if (start < 0) start += size;  // as the graph's slice resolves it
    start = std::clamp<int64_t>(start, 0, size);
    const bool go_nhwc = rank == 4 && is_nhwc(n.inputs[0]);
    const int x = go_nhwc ? nhwc(n.inputs[0]) : plain(n.inputs[0]);
    const int a = go_nhwc ? nhwc_axis(axis) : static_cast<int>(axis);
    const int out = output(n, 0, go_nhwc);
    ops_.push_back({fb::OpCode_Slice, {x}, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_SliceOptions,
                          fb::CreateSliceOptions(b, a, int(start), int(step)).Union());
                    }});
  }

  // lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih?, b_hh?) -> Lstm, the two biases summed.
  void lower_lstm(const Node& n) {
    std::vector<int> ins{plain(n.inputs[0]), plain(n.inputs[1]), plain(n.inputs[2])};
    for (size_t i : {size_t{3}, size_t{4}}) {
      ins.push_back(
          add_constant(value(n.inputs[i]).name, constant_data(n.inputs[i]), shape_of(n.inputs[i])));
    }
    if (n.inputs.size() == 7) {
      std::vector<float> bias = constant_data(n.inputs[5]), b_hh = constant_data(n.inputs[6]);
      for (size_t j = 0; j < bias.size(); ++j) bias[j] += b_hh[j];
      ins.push_back(add_constant(value(n.inputs[5]).name + "_sum", bias, shape_of(n.inputs[5])));
    }
    std::vector<int> outs{output(n, 0, false)};
    if (used(n.outputs[1])) outs.push_back(output(n, 1, false));
    const bool reverse = n.attrs.has("reverse") && n.attrs.b("reverse");
    ops_.push_back({fb::OpCode_Lstm, ins, outs, [reverse](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_LstmOptions,
                                            fb::CreateLstmOptions(b, reverse).Union());
                    }});
  }

  void lower_permute(const Node& n) {
    std::vector<int32_t> perm;
    for (int64_t a : n.attrs.ints("order")) perm.push_back(static_cast<int32_t>(a));
    int x = plain(n.inputs[0]);
    int out = output(n, 0, false);
    ops_.push_back({fb::OpCode_Transpose, {x}, {out}, [perm](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_TransposeOptions,
                                            fb::CreateTransposeOptionsDirect(b, &perm).Union());
                    }});
  }

  bool is_nhwc(int id) const { return placed_[static_cast<size_t>(id)].nhwc; }

  // A unary op from value `a` to value `result`, in a's layout.
  void add_unary(fb::OpCode code, int a, int result) {
    bool keep = is_nhwc(a);
    int x = keep ? nhwc(a) : plain(a);
    std::vector<int32_t> s = shape_of(result);
    if (keep) s = {s[0], s[2], s[3], s[1]};
    int out = add_tensor(value(result).name, s, result);
    placed_[static_cast<size_t>(result)] = {out, keep};
    ops_.push_back({code, {x}, {out}, nullptr});
  }

  // A binary op whose result is graph value `result`. When an operand is NHWC, the others
  // follow: activations through a transpose, constants permuted (after padding their shape
  // to 4-d, as broadcasting does).
  void lower_binary(fb::OpCode code, int a, int b, int result) {
    auto fits_nhwc = [&](int id) { return is_constant(id) || value(id).shape.size() == 4; };
    bool go_nhwc = value(result).shape.size() == 4 && (is_nhwc(a) || is_nhwc(b)) && fits_nhwc(a) &&
                   fits_nhwc(b);
    auto operand = [&](int id) {
      if (!go_nhwc) return plain(id);
      if (!is_constant(id)) return nhwc(id);
      std::vector<int32_t> s = shape_of(id);
      while (s.size() < 4) s.insert(s.begin(), 1);
      return add_constant(value(id).name + "_nhwc", nchw_to_nhwc(constant_data(id), s),
                          {s[0], s[2], s[3], s[1]});
    };
    int x = operand(a), y = operand(b);
    std::vector<int32_t> s = shape_of(result);
    if (go_nhwc) s = {s[0], s[2], s[3], s[1]};
    int out = add_tensor(value(result).name, s, result);
    placed_[static_cast<size_t>(result)] = {out, go_nhwc};
    ops_.push_back({code, {x, y}, {out}, nullptr});
  }

  void lower_softmax(const Node& n) {
    int64_t axis = n.attrs.i("axis");
    int64_t rank = static_cast<int64_t>(value(n.inputs[0]).shape.size());
    if (axis < 0) axis += rank;
    auto softmax = [](int a) {
      return [a](flatbuffers::FlatBufferBuilder& b) {
        return std::make_pair(fb::OperatorOptions_SoftmaxOptions,
                              fb::CreateSoftmaxOptions(b, a).Union());
      };
    };
    if (rank == 0) {  // the lite Softmax needs an axis: through a 1-element vector
      int flat = add_tensor(value(n.inputs[0]).name + "_1d", {1});
      ops_.push_back({fb::OpCode_Reshape, {plain(n.inputs[0])}, {flat}, nullptr});
      int soft = add_tensor(value(n.outputs[0]).name + "_1d", {1});
      ops_.push_back({fb::OpCode_Softmax, {flat}, {soft}, softmax(0)});
      ops_.push_back({fb::OpCode_Reshape, {soft}, {output(n, 0, false)}, nullptr});
      return;
    }
    bool keep = is_nhwc(n.inputs[0]);
    int x = keep ? nhwc(n.inputs[0]) : plain(n.inputs[0]);
    int a = keep ? nhwc_axis(axis) : static_cast<int>(axis);
    int out = output(n, 0, keep);
    ops_.push_back({fb::OpCode_Softmax, {x}, {out}, softmax(a)});
  }

  void lower_concat(const Node& n) {
    int64_t rank = static_cast<int64_t>(value(n.outputs[0]).shape.size());
    int64_t axis = n.attrs.i("axis");
    if (axis < 0) axis += rank;
    bool go_nhwc = rank == 4 && std::any_of(n.inputs.begin(), n.inputs.end(),
                                            [&](int id) { return is_nhwc(id); });
    std::vector<int> ins;
    for (int id : n.inputs) ins.push_back(go_nhwc ? nhwc(id) : plain(id));
    int a = go_nhwc ? nhwc_axis(axis) : static_cast<int>(axis);
    int out = output(n, 0, go_nhwc);
    ops_.push_back({fb::OpCode_Concat, ins, {out}, [a](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(fb::OperatorOptions_ConcatOptions,
                                            fb::CreateConcatOptions(b, a).Union());
                    }});
  }

  void lower_mean(const Node& n, bool sum) {
    int64_t rank = static_cast<int64_t>(value(n.inputs[0]).shape.size());
    bool keep = n.attrs.b("keepdim");
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    for (int64_t a : n.attrs.ints("axes"))
      reduced[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
    if (n.attrs.ints("axes").empty()) reduced.assign(static_cast<size_t>(rank), true);
    // NHWC works when the kept axes keep their NCHW order: always with keepdim (the output
    // stays NHWC), else unless C survives beside H or W.
    bool go_nhwc = is_nhwc(n.inputs[0]) && (keep || reduced[1] || (reduced[2] && reduced[3]));
    std::vector<int32_t> axes;
    for (int64_t a = 0; a < rank; ++a) {
      if (reduced[static_cast<size_t>(a)]) axes.push_back(go_nhwc ? nhwc_axis(a) : int32_t(a));
    }
    std::sort(axes.begin(), axes.end());
    int x = go_nhwc ? nhwc(n.inputs[0]) : plain(n.inputs[0]);
    int out = output(n, 0, go_nhwc && keep);
    add_mean(x, out, axes, keep, sum ? fb::OpCode_Sum : fb::OpCode_Mean);
  }

  void lower_resize(const Node& n, bool bilinear) {
    bool corners = n.attrs.has("align_corners") && n.attrs.b("align_corners");
    double rh = n.attrs.has("ratio_h") ? n.attrs.f("ratio_h") : 0.0;
    double rw = n.attrs.has("ratio_w") ? n.attrs.f("ratio_w") : 0.0;
    int x = nhwc(n.inputs[0]);
    int out = output(n, 0, true);
    ops_.push_back({fb::OpCode_Resize, {x}, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_ResizeOptions,
                          fb::CreateResizeOptions(b, bilinear, corners, rh, rw).Union());
                    }});
  }

  void lower_pad(const Node& n) {
    if (n.attrs.has("mode") && n.attrs.get<std::string>("mode") != "constant") {
      throw Unsupported{"padding mode " + n.attrs.get<std::string>("mode")};
    }
    const std::vector<int64_t>& pads = n.attrs.ints("pads");
    int64_t rank = static_cast<int64_t>(value(n.inputs[0]).shape.size());
    if (pads.size() % 2 != 0 || static_cast<int64_t>(pads.size()) > 2 * rank) {
      throw Unsupported{"pads must hold (before, after) pairs, at most one per dimension"};
    }
    // The runtime's Pad takes [0, 2^20] (cropping, a negative pad, has no lite form).
    for (int64_t p : pads) {
      if (p < 0 || p > (int64_t{1} << 20)) throw Unsupported{"pads outside [0, 2^20]"};
    }
    std::vector<int32_t> before(static_cast<size_t>(rank), 0), after(static_cast<size_t>(rank), 0);
    for (size_t i = 0; 2 * i < pads.size(); ++i) {
      size_t d = static_cast<size_t>(rank) - 1 - i;  // last dimension first
      before[d] = static_cast<int32_t>(pads[2 * i]);
      after[d] = static_cast<int32_t>(pads[2 * i + 1]);
    }
    bool keep = is_nhwc(n.inputs[0]);
    if (keep) {
      std::vector<int32_t> b(4), a(4);
      for (int d = 0; d < 4; ++d)
        b[static_cast<size_t>(nhwc_axis(d))] = before[static_cast<size_t>(d)],
        a[static_cast<size_t>(nhwc_axis(d))] = after[static_cast<size_t>(d)];
      before = b, after = a;
    }
    float fill = n.attrs.has("value") ? static_cast<float>(n.attrs.f("value")) : 0.0f;
    int x = keep ? nhwc(n.inputs[0]) : plain(n.inputs[0]);
    int out = output(n, 0, keep);
    ops_.push_back({fb::OpCode_Pad, {x}, {out}, [=](flatbuffers::FlatBufferBuilder& b) {
                      return std::make_pair(
                          fb::OperatorOptions_PadOptions,
                          fb::CreatePadOptionsDirect(b, &before, &after, fill).Union());
                    }});
  }

  // ---- int8 quantization ----

  struct Range {
    float lo = 0, hi = 0;
    bool seen = false;
  };

  // Every float32 value's range over the calibration batches, by running the graph with
  // all of them as outputs.
  std::vector<Range> calibrate() {
    check(!options_.calibration.empty(), "convert",
          "int8 quantization needs calibration data (representative inputs)");
    auto probe = std::make_shared<Graph>(g_);
    probe->outputs.clear();
    for (size_t id = 0; id < g_.values.size(); ++id) {
      const Value& v = g_.values[id];
      if (v.dtype == DType::Float32 &&
          (v.kind == ValueKind::op_output || v.kind == ValueKind::input)) {
        probe->outputs.push_back(static_cast<int>(id));
      }
    }
    graph::Executor executor(probe);
    std::vector<Range> ranges(g_.values.size());
    auto widen = [&](int id, const Tensor& t) {
      if (t.numel() == 0) return;
      Range& r = ranges[static_cast<size_t>(id)];
      float lo = amin(t).item<float>(), hi = amax(t).item<float>();
      r = r.seen ? Range{std::min(r.lo, lo), std::max(r.hi, hi), true} : Range{lo, hi, true};
    };
    NoGradGuard no_grad;
    for (const TensorList& batch : options_.calibration) {
      TensorList outs = executor.run(batch);
      for (size_t k = 0; k < outs.size(); ++k) widen(probe->outputs[k], outs[k]);
    }
    return ranges;
  }

  static bool computes_int8(fb::OpCode c) {
    return c == fb::OpCode_Conv2D || c == fb::OpCode_DepthwiseConv2D ||
           c == fb::OpCode_FullyConnected || c == fb::OpCode_TransposeConv2D;
  }
  // The output-channel axis of a layer's weights (per-channel scales run along it).
  static int weight_channel_axis(fb::OpCode c) {
    return c == fb::OpCode_Conv2D || c == fb::OpCode_TransposeConv2D ? 3
           : c == fb::OpCode_DepthwiseConv2D                         ? 2
                                                                     : 0;
  }
  static bool moves_int8(fb::OpCode c) {
    return c == fb::OpCode_MaxPool2D || c == fb::OpCode_AveragePool2D || c == fb::OpCode_Reshape ||
           c == fb::OpCode_Transpose || c == fb::OpCode_Slice || c == fb::OpCode_Pad ||
           c == fb::OpCode_Concat;
  }
  // Operators whose int8 kernels compute in float32 between their int8 inputs and output
  // (the runtime's Int8Float): each output gets the quantization of its calibrated range.
  static bool requantizes_int8(fb::OpCode c) {
    switch (c) {
      case fb::OpCode_Add:
      case fb::OpCode_Sub:
      case fb::OpCode_Mul:
      case fb::OpCode_Div:
      case fb::OpCode_Maximum:
      case fb::OpCode_Minimum:
      case fb::OpCode_Logistic:
      case fb::OpCode_Tanh:
      case fb::OpCode_Relu:
      case fb::OpCode_Relu6:
      case fb::OpCode_HardSwish:
      case fb::OpCode_Neg:
      case fb::OpCode_Abs:
      case fb::OpCode_Exp:
      case fb::OpCode_Sqrt:
      case fb::OpCode_Square:
      case fb::OpCode_Silu:
      case fb::OpCode_Mean:
      case fb::OpCode_Sum:
      case fb::OpCode_Softmax:
      case fb::OpCode_Resize:
        return true;
      default:
        return false;
    }
  }

  // Per-tensor asymmetric int8 parameters for a range (widened to hold 0).
  static void set_activation_quantization(LiteTensor& t, Range r) {
    // A NaN or inf range gives no int8 scale: the model would compute zeros or fail to
    // load. (Values that take another's quantization, a pad with -inf, never get here.)
    if (!std::isfinite(r.lo) || !std::isfinite(r.hi)) {
      fail("convert", "calibration gives tensor '", t.name, "' the range [", r.lo, ", ", r.hi,
           "]; int8 quantization needs finite calibration inputs and activations");
    }
    float lo = std::min(r.lo, 0.0f), hi = std::max(r.hi, 0.0f);
    float scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    int64_t zero = std::clamp<int64_t>(std::llround(-128.0 - lo / scale), -128, 127);
    t.dtype = fb::DType_Int8;
    t.scales = {scale};
    t.zero_points = {zero};
    t.quant_axis = -1;
  }

  // An int8 copy of float32 constant `t`, per tensor over its values' range.
  int quantized_constant(int t) {
    LiteTensor q = tensors_[static_cast<size_t>(t)];
    auto [lo, hi] = std::minmax_element(q.values.begin(), q.values.end());
    set_activation_quantization(q, Range{*lo, *hi, true});
    q.int8s.resize(q.values.size());
    for (size_t i = 0; i < q.values.size(); ++i) {
      long v = std::lround(q.values[i] / q.scales[0]) + q.zero_points[0];
      q.int8s[i] = static_cast<int8_t>(std::clamp<long>(v, -128, 127));
    }
    q.values.clear();
    q.name.append("_int8");
    tensors_.push_back(std::move(q));
    return static_cast<int>(tensors_.size()) - 1;
  }

  // Symmetric int8 weights with one scale per output channel along `axis`.
  static void quantize_weights(LiteTensor& w, int axis) {
    int64_t channels = w.shape[static_cast<size_t>(axis)], inner = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < w.shape.size(); ++d) inner *= w.shape[d];
    std::vector<float> top(static_cast<size_t>(channels), 0.0f);
    for (size_t i = 0; i < w.values.size(); ++i) {
      size_t c = static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
      top[c] = std::max(top[c], std::fabs(w.values[i]));
    }
    w.scales.clear();
    for (float t : top) w.scales.push_back(t > 0 ? t / 127.0f : 1.0f);
    w.zero_points.assign(static_cast<size_t>(channels), 0);
    w.quant_axis = axis;
    w.int8s.resize(w.values.size());
    for (size_t i = 0; i < w.values.size(); ++i) {
      size_t c = static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
      long q = std::lround(w.values[i] / w.scales[c]);
      w.int8s[i] = static_cast<int8_t>(std::clamp<long>(q, -127, 127));
    }
    w.dtype = fb::DType_Int8;
    w.values.clear();
  }

  // Rewrites the operator list: the layers whose input and output ranges are known run on
  // int8, and so do the pooling and data movement that follow them; quantize and
  // dequantize operators go where int8 and float32 meet.
  void quantize_int8(const std::vector<Range>& ranges) {
    auto range_of = [&](int t) {
      int v = tensors_[static_cast<size_t>(t)].value;
      return v >= 0 && static_cast<size_t>(v) < ranges.size() ? ranges[static_cast<size_t>(v)]
                                                              : Range{};
    };
    std::vector<char> is_int8(tensors_.size(), 0);
    std::map<int, int> int8_copy, float_copy;
    std::vector<LiteOp> out;
    auto as_int8 = [&](int t) {  // a float activation, quantized before its consumer
      if (is_int8[static_cast<size_t>(t)]) return t;
      auto it = int8_copy.find(t);
      if (it != int8_copy.end()) return it->second;
      int q = add_tensor(tensors_[static_cast<size_t>(t)].name + "_int8",
                         tensors_[static_cast<size_t>(t)].shape,
                         tensors_[static_cast<size_t>(t)].value);
      set_activation_quantization(tensors_[static_cast<size_t>(q)], range_of(t));
      is_int8.push_back(1);
      out.push_back({fb::OpCode_Quantize, {t}, {q}, nullptr});
      return int8_copy[t] = q;
    };
    auto as_float = [&](int t) {  // an int8 activation, dequantized for a float consumer
      if (!is_int8[static_cast<size_t>(t)]) return t;
      auto it = float_copy.find(t);
      if (it != float_copy.end()) return it->second;
      int f = add_tensor(tensors_[static_cast<size_t>(t)].name + "_float",
                         tensors_[static_cast<size_t>(t)].shape);
      is_int8.push_back(0);
      out.push_back({fb::OpCode_Dequantize, {t}, {f}, nullptr});
      return float_copy[t] = f;
    };
    std::vector<int> readers(tensors_.size(), 0);
    for (const LiteOp& op : ops_) {
      for (int t : op.inputs) {
        if (t >= 0) ++readers[static_cast<size_t>(t)];
      }
    }
    int64_t int8_ops = 0;
    auto same_quantization = [&](int a, int b) {
      const LiteTensor &x = tensors_[static_cast<size_t>(a)], &y = tensors_[static_cast<size_t>(b)];
      return x.scales == y.scales && x.zero_points == y.zero_points;
    };
    for (LiteOp op : ops_) {
      bool compute = computes_int8(op.code) && range_of(op.inputs[0]).seen &&
                     range_of(op.outputs[0]).seen &&
                     tensors_[static_cast<size_t>(op.inputs[1])].constant;
      bool move = moves_int8(op.code) && is_int8[static_cast<size_t>(op.inputs[0])];
      // Concat copies bytes: every input int8 in the same quantization.
      for (size_t k = 1; move && op.code == fb::OpCode_Concat && k < op.inputs.size(); ++k) {
        move = is_int8[static_cast<size_t>(op.inputs[k])] &&
               same_quantization(op.inputs[k], op.inputs[0]);
      }
      // Requantizing operators continue int8 regions: some input int8 already, every other
      // an activation with a calibrated range or a float32 constant (quantized per tensor: x
      // / 49 after a sum). A model's float input normalized by Sub and Div stays float up to
      // the first layer (quantizing there cost 2 us in the main job's CNN).
      bool requantize = requantizes_int8(op.code) && range_of(op.outputs[0]).seen &&
                        std::any_of(op.inputs.begin(), op.inputs.end(), [&](int t) {
                          return t >= 0 && is_int8[static_cast<size_t>(t)];
                        });
      for (int t : op.inputs) {
        const LiteTensor* in = t >= 0 ? &tensors_[static_cast<size_t>(t)] : nullptr;
        requantize = requantize && in &&
                     (is_int8[static_cast<size_t>(t)] ||
                      (in->constant ? in->dtype == fb::DType_Float32 && !in->values.empty()
                                    : range_of(t).seen));
      }
      // An embedding table quantized per tensor; the rows keep its quantization.
      if (op.code == fb::OpCode_EmbeddingLookup &&
          tensors_[static_cast<size_t>(op.inputs[1])].constant &&
          tensors_[static_cast<size_t>(op.inputs[1])].dtype == fb::DType_Float32) {
        LiteTensor& table = tensors_[static_cast<size_t>(op.inputs[1])];
        if (!table.values.empty()) {
          op.inputs[1] = quantized_constant(op.inputs[1]);
          is_int8.resize(tensors_.size(), 0);
          const LiteTensor& q = tensors_[static_cast<size_t>(op.inputs[1])];
          LiteTensor& y = tensors_[static_cast<size_t>(op.outputs[0])];
          y.dtype = fb::DType_Int8;
          y.scales = q.scales;
          y.zero_points = q.zero_points;
          is_int8[static_cast<size_t>(op.outputs[0])] = 1;
          ++int8_ops;
          out.push_back(op);
          continue;
        }
      }
      if (requantize) {
        for (int& t : op.inputs) {
          t = tensors_[static_cast<size_t>(t)].constant ? quantized_constant(t) : as_int8(t);
          if (static_cast<size_t>(t) >= is_int8.size()) is_int8.resize(tensors_.size(), 0);
          is_int8[static_cast<size_t>(t)] = 1;
        }
        set_activation_quantization(tensors_[static_cast<size_t>(op.outputs[0])],
                                    range_of(op.outputs[0]));
        is_int8[static_cast<size_t>(op.outputs[0])] = 1;
        ++int8_ops;
        out.push_back(op);
        continue;
      }
      if (!compute && !move) {
        for (int& t : op.inputs) {
          if (t >= 0) t = as_float(t);
        }
        out.push_back(op);
        continue;
      }
      // A weight or bias that other operators also read (exporters merge equal biases) is
      // quantized as this layer's own copy: each layer has its own scales.
      for (size_t k = 1; compute && k < op.inputs.size() && k <= 2; ++k) {
        int t = op.inputs[k];
        if (t < 0 || readers[static_cast<size_t>(t)] < 2) continue;
        LiteTensor copy = tensors_[static_cast<size_t>(t)];
        copy.name.append("_").append(std::to_string(int8_ops));
        tensors_.push_back(std::move(copy));
        is_int8.push_back(0);
        op.inputs[k] = static_cast<int>(tensors_.size()) - 1;
      }
      ++int8_ops;
      op.inputs[0] = as_int8(op.inputs[0]);
      LiteTensor& x = tensors_[static_cast<size_t>(op.inputs[0])];
      LiteTensor& y = tensors_[static_cast<size_t>(op.outputs[0])];
      if (move) {  // the output keeps the input's quantization
        y.dtype = fb::DType_Int8;
        y.scales = x.scales;
        y.zero_points = x.zero_points;
      } else {
        set_activation_quantization(y, range_of(op.outputs[0]));
        LiteTensor& w = tensors_[static_cast<size_t>(op.inputs[1])];
        quantize_weights(w, weight_channel_axis(op.code));
        if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
          LiteTensor& bias = tensors_[static_cast<size_t>(op.inputs[2])];
          bias.int32s.resize(bias.values.size());
          for (size_t c = 0; c < bias.values.size(); ++c) {
            double s = double(x.scales[0]) * w.scales[w.scales.size() > 1 ? c : 0];
            bias.int32s[c] = static_cast<int32_t>(
                std::clamp<double>(std::llround(bias.values[c] / s), -2147483647.0, 2147483647.0));
          }
          bias.dtype = fb::DType_Int32;
          bias.values.clear();
        }
      }
      is_int8[static_cast<size_t>(op.outputs[0])] = 1;
      out.push_back(op);
    }
    for (int& t : outputs_) t = as_float(t);
    ops_ = std::move(out);
    int8_operators_ = int8_ops;
  }

  // Float16 or int8 weights for the float layers (see Quantization).
  void compress_weights(Quantization how) {
    for (const LiteOp& op : ops_) {
      if (!computes_int8(op.code)) continue;
      LiteTensor& w = tensors_[static_cast<size_t>(op.inputs[1])];
      if (!w.constant || w.dtype != fb::DType_Float32) continue;
      if (how == Quantization::float16) {
        w.halfs.resize(w.values.size());
        for (size_t i = 0; i < w.values.size(); ++i) {
          float16 h(w.values[i]);
          std::memcpy(&w.halfs[i], &h, sizeof(uint16_t));
        }
        w.dtype = fb::DType_Float16;
        w.values.clear();
      } else {
        quantize_weights(w, weight_channel_axis(op.code));
      }
      ++int8_operators_;  // counted as compressed layers
    }
  }

  // ---- the flatbuffer ----

  // Appends a constant's bytes to the data block (64-byte aligned); returns its buffer.
  template <typename T>
  int add_buffer(const std::vector<T>& v) {
    size_t offset = (data_.size() + 63) / 64 * 64, bytes = v.size() * sizeof(T);
    data_.resize(offset + bytes);
    if (bytes) std::memcpy(data_.data() + offset, v.data(), bytes);
    buffers_.emplace_back(offset, bytes);
    return static_cast<int>(buffers_.size()) - 1;
  }

  LiteModel finish() {
    // Constants no operator reads any more (float32 originals of quantized copies) keep
    // their tensor entry, without bytes.
    std::vector<char> read(tensors_.size(), 0);
    for (const LiteOp& op : ops_) {
      for (int t : op.inputs) {
        if (t >= 0) read[static_cast<size_t>(t)] = 1;
      }
    }
    for (int t : outputs_) read[static_cast<size_t>(t)] = 1;
    std::vector<int> buffer_of(tensors_.size(), -1);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const LiteTensor& t = tensors_[i];
      if (!t.constant || !read[i]) continue;
      buffer_of[i] = t.dtype == fb::DType_Int8      ? add_buffer(t.int8s)
                     : t.dtype == fb::DType_Int32   ? add_buffer(t.int32s)
                     : t.dtype == fb::DType_Float16 ? add_buffer(t.halfs)
                                                    : add_buffer(t.values);
    }
    flatbuffers::FlatBufferBuilder b(data_.size() + 4096);
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const LiteTensor& t = tensors_[i];
      flatbuffers::Offset<fb::Quantization> q;
      if (!t.scales.empty()) {
        q = fb::CreateQuantizationDirect(b, &t.scales, &t.zero_points, t.quant_axis);
      }
      tensors.push_back(
          fb::CreateTensorDirect(b, t.name.c_str(), t.dtype, &t.shape, buffer_of[i], q));
    }
    std::vector<flatbuffers::Offset<fb::Operator>> ops;
    for (const LiteOp& op : ops_) {
      auto [type, options] =
          op.options ? op.options(b)
                     : std::make_pair(fb::OperatorOptions_NONE, flatbuffers::Offset<void>());
      ops.push_back(fb::CreateOperatorDirect(b, op.code, &op.inputs, &op.outputs, type, options));
    }
    std::vector<fb::Buffer> buffers;
    for (auto [offset, size] : buffers_) buffers.emplace_back(offset, size);
    std::vector<flatbuffers::Offset<fb::Metadata>> metadata;
    metadata.push_back(fb::CreateMetadataDirect(b, "producer", "tessera convert"));
    for (const auto& [k, v] : options_.metadata) {
      metadata.push_back(fb::CreateMetadataDirect(b, k.c_str(), v.c_str()));
    }
    b.ForceVectorAlignment(data_.size(), 1, 64);
    auto data = b.CreateVector(data_);
    auto model = fb::CreateModel(b, kLiteVersion, b.CreateVector(tensors), b.CreateVector(ops),
                                 b.CreateVector(inputs_), b.CreateVector(outputs_),
                                 b.CreateVectorOfStructs(buffers), b.CreateVector(metadata), data);
    fb::FinishModelBuffer(b, model);
    LiteModel out;
    out.bytes.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
    out.operators = static_cast<int64_t>(ops_.size());
    out.transposes = transposes_;
    out.int8_operators = int8_operators_;
    return out;
  }

  const Graph& g_;
  LiteOptions options_;
  std::vector<Placed> placed_;
  std::map<int, int> nchw_copy_, nhwc_copy_;
  // Flattens of NHWC values (graph value -> the 4-d value), and their NHWC-order tensors.
  std::map<int, int> nhwc_flat_, nhwc_flattened_;
  // Convolution outputs (graph value -> lite tensor, and whether a max pool was fused in).
  std::map<int, std::pair<int, std::shared_ptr<bool>>> conv_outputs_;
  std::vector<LiteTensor> tensors_;
  std::vector<LiteOp> ops_;
  std::vector<uint8_t> data_;
  std::vector<std::pair<uint64_t, uint64_t>> buffers_;
  std::vector<int> inputs_, outputs_;
  int64_t transposes_ = 0, int8_operators_ = 0;
};

}  // namespace

LiteModel to_lite(const graph::Graph& graph, const LiteOptions& options) {
  graph.validate();
  // Frozen variables, folded batch norms and fused activations are what lowering expects;
  // the passes change nothing in a graph already optimized for inference.
  // Fused elementwise programs lower instruction by instruction, through each op's own
  // lowering.
  const graph::Graph optimized =
      graph::expand_elementwise_programs(graph::optimize_for_inference(graph));
  return Lowering(optimized, options).run();
}

std::string convert_saved_model(const std::string& saved_model, const std::string& output,
                                const std::string& signature, const LiteOptions& options) {
  const char* kind = options.quantization == Quantization::int8           ? "int8"
                     : options.quantization == Quantization::float16      ? "float16 weights"
                     : options.quantization == Quantization::dynamic_int8 ? "int8 weights"
                                                                          : "float32";
  const bool int8 = options.quantization == Quantization::int8;
  graph::SavedModel model = graph::SavedModel::load(saved_model);
  LiteModel lite = to_lite(model.graph(signature), options);
  io::write_file_atomic(output, lite.bytes);
  std::ifstream in(saved_model, std::ios::binary | std::ios::ate);
  auto before = static_cast<double>(in.tellg());
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << saved_model << " (" << before / 1024 << " KiB) -> " << output << " ("
     << static_cast<double>(lite.bytes.size()) / 1024 << " KiB, " << kind << ", " << lite.operators
     << " operators";
  if (int8) os << " of which " << lite.int8_operators << " on int8";
  os << ", " << lite.transposes << " layout transposes)";
  return os.str();
}

}  // namespace tessera::convert
