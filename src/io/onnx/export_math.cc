// ONNX export of elementwise ops, reductions and softmax. Ops ONNX
// lacks at opset 17 (gelu, silu, expm1, Python-style mod ...) become short chains of ONNX
// nodes computing the same function.
#include <cmath>
#include <numbers>

#include "exporter.h"
#include "tensor_proto.h"

namespace tessera::onnx {
namespace {

using graph::Node;

DType in_dtype(ExportContext& c, const Node& n, size_t i) { return c.input_value(n, i).dtype; }
DType out_dtype(ExportContext& c, const Node& n) { return c.value(n.outputs.at(0)).dtype; }

// Input i converted to dtype `to`.
std::string in_as(ExportContext& c, const Node& n, size_t i, DType to) {
  return c.cast(c.in(n, i), in_dtype(c, n, i), to);
}

// The elementwise input of a float function: cast to the output dtype (ints promote).
std::string x_of(ExportContext& c, const Node& n) { return in_as(c, n, 0, out_dtype(c, n)); }

void finish(ExportContext& c, const Node& n, const std::string& result) {
  c.add("Identity", {result}, {c.out(n)});
}

// ------------------------------------------------------------------ unary

const std::map<std::string, std::string>& direct_unary() {
  static const std::map<std::string, std::string> ops = {{"neg", "Neg"},
                                                         {"abs", "Abs"},
                                                         {"sign", "Sign"},
                                                         {"exp", "Exp"},
                                                         {"log", "Log"},
                                                         {"sqrt", "Sqrt"},
                                                         {"reciprocal", "Reciprocal"},
                                                         {"sin", "Sin"},
                                                         {"cos", "Cos"},
                                                         {"tan", "Tan"},
                                                         {"asin", "Asin"},
                                                         {"acos", "Acos"},
                                                         {"atan", "Atan"},
                                                         {"sinh", "Sinh"},
                                                         {"cosh", "Cosh"},
                                                         {"tanh", "Tanh"},
                                                         {"sigmoid", "Sigmoid"},
                                                         {"relu", "Relu"},
                                                         {"erf", "Erf"},
                                                         {"softsign", "Softsign"},
                                                         {"hard_swish", "HardSwish"},
                                                         {"copy", "Identity"}};
  return ops;
}

void export_direct_unary(ExportContext& c, const Node& n) {
  c.add(direct_unary().at(n.op()), {x_of(c, n)}, {c.out(n)});
}

// floor, ceil, round and trunc are the identity on integers (ONNX defines them for floats).
void export_rounding(ExportContext& c, const Node& n) {
  std::string x = x_of(c, n), op = n.op();
  if (!is_floating(out_dtype(c, n))) return finish(c, n, x);
  if (op == "trunc") {
    std::string negative = c.add1("Less", {x, c.scalar(0, out_dtype(c, n))});
    c.add("Where", {negative, c.add1("Ceil", {x}), c.add1("Floor", {x})}, {c.out(n)});
    return;
  }
  c.add(op == "floor" ? "Floor" : op == "ceil" ? "Ceil" : "Round", {x}, {c.out(n)});
}

void export_float_tests(ExportContext& c, const Node& n) {
  std::string x = c.in(n, 0), op = n.op();
  DType dt = in_dtype(c, n, 0);
  // IsInf takes float and double at opset 17: half types are widened (exactly).
  if (dt == DType::Float16 || dt == DType::BFloat16) x = c.cast(x, dt, DType::Float32);
  if (!is_floating(dt)) {
    // Integers are never NaN or infinite: x == x is all true, its negation all false.
    std::string all = c.add1("Equal", {x, x});
    return op == "isfinite" ? finish(c, n, all) : (void)c.add("Not", {all}, {c.out(n)});
  }
  if (op == "isnan") return (void)c.add("IsNaN", {x}, {c.out(n)});
  if (op == "isinf") return (void)c.add("IsInf", {x}, {c.out(n)});
  std::string bad = c.add1("Or", {c.add1("IsNaN", {x}), c.add1("IsInf", {x})});
  c.add("Not", {bad}, {c.out(n)});
}

void export_composite_unary(ExportContext& c, const Node& n) {
  std::string x = x_of(c, n), op = n.op();
  DType dt = out_dtype(c, n);
  auto k = [&](double v) { return c.scalar(v, dt); };
  if (op == "square") return (void)c.add("Mul", {x, x}, {c.out(n)});
  if (op == "rsqrt") return (void)c.add("Reciprocal", {c.add1("Sqrt", {x})}, {c.out(n)});
  if (op == "expm1") return (void)c.add("Sub", {c.add1("Exp", {x}), k(1)}, {c.out(n)});
  if (op == "log1p") return (void)c.add("Log", {c.add1("Add", {x, k(1)})}, {c.out(n)});
  if (op == "log2") {
    return (void)c.add("Div", {c.add1("Log", {x}), k(std::numbers::ln2)}, {c.out(n)});
  }
  if (op == "silu") return (void)c.add("Mul", {x, c.add1("Sigmoid", {x})}, {c.out(n)});
  if (op == "relu6") return (void)c.add("Clip", {x, k(0), k(6)}, {c.out(n)});
  if (op == "gelu") {  // x/2 (1 + erf(x / sqrt 2))
    std::string e = c.add1("Erf", {c.add1("Mul", {x, k(1 / std::numbers::sqrt2)})});
    c.add("Mul", {c.add1("Mul", {x, k(0.5)}), c.add1("Add", {e, k(1)})}, {c.out(n)});
    return;
  }
  if (op == "gelu_tanh") {  // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string cube = c.add1("Mul", {c.add1("Mul", {x, x}), x});
    std::string inner = c.add1("Add", {x, c.add1("Mul", {cube, k(0.044715)})});
    std::string t = c.add1("Tanh", {c.add1("Mul", {inner, k(std::sqrt(2 / std::numbers::pi))})});
    c.add("Mul", {c.add1("Mul", {x, k(0.5)}), c.add1("Add", {t, k(1)})}, {c.out(n)});
    return;
  }
  throw ExportUnsupported{"no ONNX form for this unary op"};
}

void export_parametric_unary(ExportContext& c, const Node& n) {
  std::string x = x_of(c, n), op = n.op();
  DType dt = out_dtype(c, n);
  ::onnx::NodeProto* node = nullptr;
  if (op == "leaky_relu" || op == "elu") {
    node = &c.add(op == "elu" ? "Elu" : "LeakyRelu", {x}, {c.out(n)});
    set_attr(*node, "alpha", n.attrs.f("alpha"));
  } else if (op == "selu") {
    c.add("Selu", {x}, {c.out(n)});   // ONNX's default alpha and gamma are SELU's constants
  } else if (op == "hard_sigmoid") {  // relu6(x + 3) / 6
    node = &c.add("HardSigmoid", {x}, {c.out(n)});
    set_attr(*node, "alpha", 1.0 / 6.0);
    set_attr(*node, "beta", 0.5);
  } else if (op == "softplus") {
    // Tessera's softplus: alpha is beta, beta the threshold above which it is linear.
    double beta = n.attrs.f("alpha"), threshold = n.attrs.f("beta");
    std::string bx = beta == 1 ? x : c.add1("Mul", {x, c.scalar(beta, dt)});
    std::string soft = c.add1("Softplus", {bx});
    if (beta != 1) soft = c.add1("Div", {soft, c.scalar(beta, dt)});
    std::string linear = c.add1("Greater", {bx, c.scalar(threshold, dt)});
    c.add("Where", {linear, x, soft}, {c.out(n)});
  } else if (op == "clamp") {
    // Infinite bounds are absent inputs (integers have no infinity).
    auto bound = [&](const char* name) {
      double v = n.attrs.f(name);
      return std::isinf(v) ? std::string() : c.scalar(v, dt);
    };
    c.add("Clip", {x, bound("alpha"), bound("beta")}, {c.out(n)});
  }
}

// ------------------------------------------------------------------ binary

const std::map<std::string, std::string>& direct_binary() {
  static const std::map<std::string, std::string> ops = {
      {"add", "Add"}, {"sub", "Sub"},     {"mul", "Mul"},    {"div", "Div"},
      {"pow", "Pow"}, {"maximum", "Max"}, {"minimum", "Min"}};
  return ops;
}

void export_arithmetic(ExportContext& c, const Node& n) {
  DType dt = out_dtype(c, n);
  std::string a = in_as(c, n, 0, dt), b = in_as(c, n, 1, dt), op = n.op();
  if (op == "floor_div" || op == "mod") {
    ::onnx::NodeProto* node = nullptr;
    bool fp = is_floating(dt);
    // Python's mod (the sign of the divisor): ONNX Mod with fmod=0 on integers; on floats,
    // C's fmod moved by the divisor where the signs differ.
    std::string r = c.add1("Mod", {a, b}, &node);
    set_attr(*node, "fmod", int64_t{fp ? 1 : 0});
    if (fp) {
      std::string zero = c.scalar(0, dt);
      std::string nonzero = c.add1("Not", {c.add1("Equal", {r, zero})});
      std::string differ = c.add1("Xor", {c.add1("Less", {r, zero}), c.add1("Less", {b, zero})});
      r = c.add1("Where", {c.add1("And", {nonzero, differ}), c.add1("Add", {r, b}), r});
    }
    if (op == "mod") return finish(c, n, r);
    // floor(a / b) = (a - mod(a, b)) / b exactly for integers; floats take Floor(a / b).
    if (fp) return (void)c.add("Floor", {c.add1("Div", {a, b})}, {c.out(n)});
    c.add("Div", {c.add1("Sub", {a, r}), b}, {c.out(n)});
    return;
  }
  if (dt == DType::Bool) {  // ONNX's Add, Mul, Max and Min take no bools: logic ops do
    static const std::map<std::string, std::string> logic = {
        {"add", "Or"}, {"maximum", "Or"}, {"mul", "And"}, {"minimum", "And"}};
    auto it = logic.find(op);
    if (it == logic.end()) throw ExportUnsupported{"this op on bool tensors"};
    return (void)c.add(it->second, {a, b}, {c.out(n)});
  }
  c.add(direct_binary().at(op), {a, b}, {c.out(n)});
}

void export_comparison(ExportContext& c, const Node& n) {
  static const std::map<std::string, std::string> ops = {
      {"eq", "Equal"},   {"ne", "Equal"},       {"lt", "Less"},
      {"gt", "Greater"}, {"le", "LessOrEqual"}, {"ge", "GreaterOrEqual"}};
  DType common = promote_types(in_dtype(c, n, 0), in_dtype(c, n, 1));
  // ONNX orders numbers only (and compares bools for equality only): bools become int32.
  if (common == DType::Bool && n.op() != std::string("eq") && n.op() != std::string("ne"))
    common = DType::Int32;
  std::string a = in_as(c, n, 0, common), b = in_as(c, n, 1, common);
  if (n.op() == std::string("ne")) {
    c.add("Not", {c.add1("Equal", {a, b})}, {c.out(n)});
    return;
  }
  c.add(ops.at(n.op()), {a, b}, {c.out(n)});
}

void export_logical(ExportContext& c, const Node& n) {
  std::string op = n.op();
  std::string a = in_as(c, n, 0, DType::Bool);
  if (op == "logical_not") return (void)c.add("Not", {a}, {c.out(n)});
  std::string b = in_as(c, n, 1, DType::Bool);
  c.add(op == "logical_and" ? "And" : op == "logical_or" ? "Or" : "Xor", {a, b}, {c.out(n)});
}

void export_where(ExportContext& c, const Node& n) {
  DType dt = out_dtype(c, n);
  c.add("Where", {in_as(c, n, 0, DType::Bool), in_as(c, n, 1, dt), in_as(c, n, 2, dt)}, {c.out(n)});
}

void export_cast(ExportContext& c, const Node& n) {
  ::onnx::NodeProto& node = c.add("Cast", {c.in(n, 0)}, {c.out(n)});
  set_attr(node, "to", int64_t{dtype_to_onnx(out_dtype(c, n))});
}

// ------------------------------------------------------------------ reductions

void export_reduce(ExportContext& c, const Node& n) {
  static const std::map<std::string, std::string> ops = {
      {"sum", "ReduceSum"}, {"prod", "ReduceProd"}, {"amax", "ReduceMax"}, {"amin", "ReduceMin"}};
  const std::vector<int64_t>& axes = n.attrs.ints("axes");
  std::string x = x_of(c, n), op = ops.at(n.op());
  std::vector<std::string> inputs{x};
  // ReduceSum takes its axes as an input from opset 13, the others from opset 18.
  if (op == "ReduceSum" && !axes.empty()) inputs.push_back(c.ints(axes));
  ::onnx::NodeProto& node = c.add(op, inputs, {c.out(n)});
  if (op != "ReduceSum" && !axes.empty()) set_attr(node, "axes", axes);
  set_attr(node, "keepdims", int64_t{n.attrs.b("keepdim") ? 1 : 0});
}

void export_arg_reduce(ExportContext& c, const Node& n) {
  ::onnx::NodeProto& node =
      c.add(n.op() == std::string("argmax") ? "ArgMax" : "ArgMin", {c.in(n, 0)}, {c.out(n)});
  set_attr(node, "axis", n.attrs.i("axis"));
  set_attr(node, "keepdims", int64_t{n.attrs.b("keepdim") ? 1 : 0});
}

// The number of elements a reduction over `axes` combines, less `correction`: a constant
// where those sizes are known, else computed from the input's shape.
void export_reduced_count(ExportContext& c, const Node& n) {
  const graph::Value& x = c.input_value(n, 0);
  std::vector<int64_t> axes = n.attrs.ints("axes");
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (axes.empty()) {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  for (int64_t& a : axes) a = a < 0 ? a + rank : a;
  double correction = static_cast<double>(n.attrs.i("correction"));
  DType dt = out_dtype(c, n);
  bool known = true;
  double count = 1;
  for (int64_t a : axes) {
    if (a < 0 || a >= rank) throw ExportUnsupported{"an axis is out of range"};
    known = known && x.shape[static_cast<size_t>(a)] >= 0;
    count *= static_cast<double>(x.shape[static_cast<size_t>(a)]);
  }
  if (known) return finish(c, n, c.scalar(std::max(count - correction, 0.0), dt));
  std::string sizes = c.add1("Gather", {c.add1("Shape", {c.in(n, 0)}), c.ints(axes)});
  ::onnx::NodeProto* prod = nullptr;
  std::string total = c.add1("ReduceProd", {sizes}, &prod);
  set_attr(*prod, "keepdims", int64_t{0});
  std::string counted = c.cast(total, DType::Int64, dt);
  std::string less = c.add1("Sub", {counted, c.scalar(correction, dt)});
  c.add("Max", {less, c.scalar(0, dt)}, {c.out(n)});
}

void export_cumsum(ExportContext& c, const Node& n) {
  c.add("CumSum", {x_of(c, n), c.scalar(static_cast<double>(n.attrs.i("axis")), DType::Int64)},
        {c.out(n)});
}

void export_softmax(ExportContext& c, const Node& n) {
  ::onnx::NodeProto& node =
      c.add(n.op() == std::string("softmax") ? "Softmax" : "LogSoftmax", {c.in(n, 0)}, {c.out(n)});
  set_attr(node, "axis", n.attrs.i("axis"));
}

}  // namespace

void add_export_math(ExportTable& t) {
  for (const auto& [op, onnx_op] : direct_unary()) t[op] = export_direct_unary;
  for (const char* op : {"floor", "ceil", "round", "trunc"}) t[op] = export_rounding;
  for (const char* op : {"isnan", "isinf", "isfinite"}) t[op] = export_float_tests;
  for (const char* op :
       {"square", "rsqrt", "expm1", "log1p", "log2", "silu", "relu6", "gelu", "gelu_tanh"}) {
    t[op] = export_composite_unary;
  }
  for (const char* op : {"leaky_relu", "elu", "selu", "hard_sigmoid", "softplus", "clamp"}) {
    t[op] = export_parametric_unary;
  }
  for (const auto& [op, onnx_op] : direct_binary()) t[op] = export_arithmetic;
  t["floor_div"] = export_arithmetic;
  t["mod"] = export_arithmetic;
  for (const char* op : {"eq", "ne", "lt", "gt", "le", "ge"}) t[op] = export_comparison;
  for (const char* op : {"logical_and", "logical_or", "logical_xor", "logical_not"}) {
    t[op] = export_logical;
  }
  t["where"] = export_where;
  t["cast"] = export_cast;
  for (const char* op : {"sum", "prod", "amax", "amin"}) t[op] = export_reduce;
  t["argmax"] = export_arg_reduce;
  t["argmin"] = export_arg_reduce;
  t["reduced_count"] = export_reduced_count;
  t["cumsum"] = export_cumsum;
  t["softmax"] = export_softmax;
  t["log_softmax"] = export_softmax;
}

}  // namespace tessera::onnx
