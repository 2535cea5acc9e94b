// ONNX export: a Tessera graph becomes an ONNX model of opset 17. Constants and variables
// become initializers, unknown dimensions become named symbolic dims (dim_param), and each
// node maps through export_table() to one or more ONNX nodes. Every node without an ONNX
// form is listed in one UnsupportedError.
#include <set>
#include <sstream>

#include "exporter.h"
#include "tensor_proto.h"
#include "tessera/graph/passes.h"
#include "tessera/io/atomic_file.h"
#include "tessera/ops/creation.h"

namespace tessera::onnx {

using graph::Graph;
using graph::Node;
using graph::Value;
using graph::ValueKind;

// ------------------------------------------------------------------ attributes

static ::onnx::AttributeProto& new_attr(::onnx::NodeProto& node, const char* name,
                                        ::onnx::AttributeProto::AttributeType type) {
  ::onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(type);
  return *a;
}
void set_attr(::onnx::NodeProto& node, const char* name, int64_t value) {
  new_attr(node, name, ::onnx::AttributeProto::INT).set_i(value);
}
void set_attr(::onnx::NodeProto& node, const char* name, double value) {
  new_attr(node, name, ::onnx::AttributeProto::FLOAT).set_f(static_cast<float>(value));
}
void set_attr(::onnx::NodeProto& node, const char* name, const std::vector<int64_t>& values) {
  auto& a = new_attr(node, name, ::onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
}
void set_attr(::onnx::NodeProto& node, const char* name, const std::string& value) {
  new_attr(node, name, ::onnx::AttributeProto::STRING).set_s(value);
}
void set_attr(::onnx::NodeProto& node, const char* name, const ::onnx::TensorProto& value) {
  *new_attr(node, name, ::onnx::AttributeProto::TENSOR).mutable_t() = value;
}

void tensor_to_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto& proto) {
  proto.set_name(name);
  proto.set_data_type(dtype_to_onnx(t.dtype()));
  for (int64_t d : t.shape()) proto.add_dims(d);
  Tensor dense = t.contiguous();
  size_t bytes = static_cast<size_t>(dense.numel()) * dense.element_size();
  proto.set_raw_data(bytes == 0 ? std::string()
                                : std::string(static_cast<const char*>(dense.data_ptr()), bytes));
}

// ------------------------------------------------------------------ the context

ExportContext::ExportContext(const Graph& graph, ::onnx::GraphProto& out)
    : graph_(graph), out_(out) {
  uses_.assign(graph.values.size(), 0);
  for (const Node& n : graph.nodes) {
    for (int id : n.inputs) ++uses_[static_cast<size_t>(id)];
  }
  for (int id : graph.outputs) ++uses_[static_cast<size_t>(id)];
  name_values();
}

// Inputs, constants and variables keep their names (made unique); node outputs get
// "t<id>". Graph outputs get names of their own at the end (see build_model).
void ExportContext::name_values() {
  names_.resize(graph_.values.size());
  for (size_t id = 0; id < graph_.values.size(); ++id) {
    const Value& v = graph_.values[id];
    std::string hint = v.name;
    if (hint.empty() && v.kind == ValueKind::op_output) hint = 't' + std::to_string(id);
    if (hint.empty()) {
      hint = v.kind == ValueKind::input ? "input" : v.kind == ValueKind::constant ? "const" : "var";
    }
    names_[id] = fresh(hint);
  }
}

std::string ExportContext::fresh(const std::string& hint) {
  std::string name = hint;
  while (!taken_.insert(name).second) name = hint + "_" + std::to_string(++counter_);
  return name;
}

const Value& ExportContext::input_value(const Node& n, size_t i) const {
  if (i >= n.inputs.size()) throw ExportUnsupported{"it has fewer inputs than it takes"};
  return value(n.inputs[i]);
}

std::string ExportContext::in(const Node& n, size_t i) const {
  input_value(n, i);
  return names_[static_cast<size_t>(n.inputs[i])];
}

std::string ExportContext::out(const Node& n, size_t i) const {
  if (i >= n.outputs.size()) throw ExportUnsupported{"it has fewer outputs than expected"};
  return names_[static_cast<size_t>(n.outputs[i])];
}

::onnx::NodeProto& ExportContext::add(const std::string& op, const std::vector<std::string>& inputs,
                                      const std::vector<std::string>& outputs) {
  ::onnx::NodeProto* node = out_.add_node();
  node->set_op_type(op);
  node->set_name(op + "_" + std::to_string(out_.node_size()));
  for (const std::string& s : inputs) node->add_input(s);
  for (const std::string& s : outputs) node->add_output(s);
  return *node;
}

std::string ExportContext::add1(const std::string& op, const std::vector<std::string>& inputs) {
  std::string result = fresh(op + "_out");
  add(op, inputs, {result});
  return result;
}

std::string ExportContext::add1(const std::string& op, const std::vector<std::string>& inputs,
                                ::onnx::NodeProto** node) {
  std::string result = fresh(op + "_out");
  *node = &add(op, inputs, {result});
  return result;
}

std::string ExportContext::ints(const std::vector<int64_t>& values) {
  auto it = int_constants_.find(values);
  if (it != int_constants_.end()) return it->second;
  std::string name = fresh("ints");
  ::onnx::TensorProto* t = out_.add_initializer();
  t->set_name(name);
  t->set_data_type(::onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  int_constants_[values] = name;
  return name;
}

std::string ExportContext::scalar(double value, DType dtype) {
  return initializer(full({}, Scalar(value), dtype), "scalar");
}

std::string ExportContext::initializer(const Tensor& t, const std::string& hint) {
  std::string name = fresh(hint);
  tensor_to_proto(t, name, *out_.add_initializer());
  return name;
}

std::string ExportContext::size(int64_t dim) {
  if (!graph::is_dim_marker(dim)) return ints({dim});
  int s = graph::marker_symbol(dim);
  auto it = symbol_sizes_.find(s);
  if (it != symbol_sizes_.end()) return it->second;
  if (s < 0 || static_cast<size_t>(s) >= graph_.symbols.size()) {
    throw ExportUnsupported{"an attribute names unknown dimension " + std::to_string(s) +
                            ", which the graph does not define"};
  }
  const graph::Symbol& sym = graph_.symbols[static_cast<size_t>(s)];
  ::onnx::NodeProto* node = nullptr;
  std::string result = add1(
      "Shape", {names_[static_cast<size_t>(graph_.inputs[static_cast<size_t>(sym.input)])]}, &node);
  set_attr(*node, "start", int64_t{sym.axis});
  set_attr(*node, "end", int64_t{sym.axis + 1});
  symbol_sizes_[s] = result;
  return result;
}

std::string ExportContext::sizes(const std::vector<int64_t>& dims) {
  bool dynamic = false;
  for (int64_t d : dims) dynamic = dynamic || graph::is_dim_marker(d);
  if (!dynamic) return ints(dims);
  // Runs of plain sizes become one constant each; each marker its input's size.
  std::vector<std::string> parts;
  std::vector<int64_t> run;
  for (int64_t d : dims) {
    if (!graph::is_dim_marker(d)) {
      run.push_back(d);
      continue;
    }
    if (!run.empty()) parts.push_back(ints(run));
    run.clear();
    parts.push_back(size(d));
  }
  if (!run.empty()) parts.push_back(ints(run));
  if (parts.size() == 1) return parts[0];
  ::onnx::NodeProto* node = nullptr;
  std::string result = add1("Concat", parts, &node);
  set_attr(*node, "axis", int64_t{0});
  return result;
}

std::string ExportContext::cast(const std::string& name, DType from, DType to) {
  if (from == to) return name;
  ::onnx::NodeProto* node = nullptr;
  std::string result = add1("Cast", {name}, &node);
  set_attr(*node, "to", int64_t{dtype_to_onnx(to)});
  return result;
}

// ------------------------------------------------------------------ the model

namespace {

void set_type(::onnx::ValueInfoProto& info, const std::string& name, const Value& v,
              const std::vector<std::string>& dim_names) {
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(dtype_to_onnx(v.dtype));
  auto* shape = tensor->mutable_shape();
  for (size_t axis = 0; axis < v.shape.size(); ++axis) {
    auto* dim = shape->add_dim();
    if (v.shape[axis] >= 0) {
      dim->set_dim_value(v.shape[axis]);
    } else if (axis < dim_names.size() && !dim_names[axis].empty()) {
      dim->set_dim_param(dim_names[axis]);
    }
  }
}

// For graph input `input`, the name of each unknown dimension ("dim_0" for symbol 0).
std::vector<std::string> input_dim_names(const Graph& g, int input) {
  std::vector<std::string> names(
      g.values[static_cast<size_t>(g.inputs[static_cast<size_t>(input)])].shape.size());
  auto name = [&](int axis, int symbol) {
    if (axis >= 0 && static_cast<size_t>(axis) < names.size())
      names[static_cast<size_t>(axis)] = "dim_" + std::to_string(symbol);
  };
  for (size_t s = 0; s < g.symbols.size(); ++s) {
    if (g.symbols[s].input == input) name(g.symbols[s].axis, static_cast<int>(s));
  }
  for (const graph::TiedDim& t : g.tied) {
    if (t.input == input) name(t.axis, t.symbol);
  }
  return names;
}

// Whether an attribute holds a size known only at run time (graph::dim_marker).
bool has_markers(const Attrs& attrs) {
  for (const auto& [name, value] : attrs.items()) {
    if (const auto* i = std::get_if<int64_t>(&value); i && graph::is_dim_marker(*i)) return true;
    if (const auto* v = std::get_if<std::vector<int64_t>>(&value)) {
      for (int64_t x : *v) {
        if (graph::is_dim_marker(x)) return true;
      }
    }
  }
  return false;
}

// Mappings that write their size attributes through ExportContext::sizes or size.
bool reads_run_time_sizes(const std::string& op) {
  static const std::set<std::string> ops = {"reshape",
                                            "expand",
                                            "fill",
                                            "slice",
                                            "one_hot",
                                            "topk",
                                            "upsample_nearest2d",
                                            "upsample_bilinear2d"};
  return ops.contains(op);
}

std::string describe(const Graph& g, size_t index) {
  const Node& n = g.nodes[index];
  std::ostringstream os;
  os << "node " << index << " " << n.op() << "(";
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Value& v = g.values[static_cast<size_t>(n.inputs[i])];
    os << (i ? ", " : "") << graph::format_type(v.dtype, v.shape);
  }
  os << ")";
  return os.str();
}

::onnx::ModelProto build_model(const Graph& traced) {
  traced.validate();
  // Fused elementwise programs export instruction by instruction, through each op's own
  // mapping.
  const Graph g = graph::expand_elementwise_programs(graph::split_training_fusions(traced));
  if (!g.effects.empty()) {
    throw UnsupportedError(
        "the graph writes variables (a training step); ONNX export takes inference graphs",
        "onnx export");
  }
  ::onnx::ModelProto model;
  model.set_ir_version(8);  // ONNX 1.10 to 1.12 write IR 8 for opset 17
  model.set_producer_name("tessera");
  model.set_producer_version("0.1");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kExportOpset);
  ::onnx::GraphProto& out = *model.mutable_graph();
  out.set_name("tessera_graph");

  ExportContext ctx(g, out);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    int id = g.inputs[i];
    set_type(*out.add_input(), ctx.name_of(id), g.values[static_cast<size_t>(id)],
             input_dim_names(g, static_cast<int>(i)));
  }
  for (size_t id = 0; id < g.values.size(); ++id) {
    const Value& v = g.values[id];
    if ((v.kind == ValueKind::constant || v.kind == ValueKind::variable) &&
        ctx.used(static_cast<int>(id))) {
      tensor_to_proto(v.data, ctx.name_of(static_cast<int>(id)), *out.add_initializer());
    }
  }

  const ExportTable& table = export_table();
  std::vector<std::string> unsupported;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    bool needed = false;
    for (int id : n.outputs) needed = needed || ctx.used(id);
    if (!needed) continue;  // dead code: ONNX checkers reject nothing, but why write it
    auto it = table.find(n.op());
    try {
      if (it == table.end()) throw ExportUnsupported{"no ONNX mapping for this op"};
      if (has_markers(n.attrs) && !reads_run_time_sizes(n.op()))
        throw ExportUnsupported{"an attribute holds a size known only at run time"};
      it->second(ctx, n);
    } catch (const ExportUnsupported& e) {
      unsupported.push_back(describe(g, i) + ": " + e.reason);
    }
  }
  if (!unsupported.empty()) {
    std::string message = std::to_string(unsupported.size()) + " node" +
                          (unsupported.size() == 1 ? "" : "s") + " cannot be written as ONNX:";
    for (const std::string& u : unsupported) message += "\n  " + u;
    throw UnsupportedError(message, "onnx export");
  }

  // Outputs get names of their own ("output", "output_1" ...) through Identity nodes, so
  // that an output that is also an input, an initializer or another output stays valid.
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    int id = g.outputs[k];
    std::string name = ctx.fresh(k == 0 ? "output" : "output_" + std::to_string(k));
    ctx.add("Identity", {ctx.name_of(id)}, {name});
    set_type(*out.add_output(), name, g.values[static_cast<size_t>(id)], {});
  }
  return model;
}

}  // namespace

const ExportTable& export_table() {
  static const ExportTable table = [] {
    ExportTable t;
    add_export_math(t);
    add_export_nn(t);
    add_export_shape(t);
    return t;
  }();
  return table;
}

std::string to_bytes(const Graph& graph) {
  ::onnx::ModelProto model = build_model(graph);
  std::string bytes;
  check(model.SerializeToString(&bytes), "onnx export",
        "protobuf could not serialize the model (is it over 2 GiB?)");
  return bytes;
}

void save(const Graph& graph, const std::string& path) {
  std::string bytes = to_bytes(graph);
  io::write_file_atomic(path, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

}  // namespace tessera::onnx
