// ONNX import: checks the model, then traces the node list into a Tessera graph. Each node
// runs its mapping (ops_*.cc) on the tensors of its inputs; while tracing, mappings whose
// inputs are all known are run right away, so shape arithmetic (Shape, Gather, Concat,
// Reshape's target) becomes constants as in ONNX Runtime's constant folding.
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "converter.h"
#include "tensor_proto.h"
#include "tessera/autodiff/autodiff.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/trace.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::onnx {

// ------------------------------------------------------------------ NodeContext

NodeContext::NodeContext(const ::onnx::NodeProto& node, int64_t opset, TensorList inputs,
                         std::function<std::string(const Tensor&)> input_name_of)
    : node_(node),
      opset_(opset),
      inputs_(std::move(inputs)),
      input_name_of_(std::move(input_name_of)) {}

std::string NodeContext::where() const {
  return str_cat("node '", node_.name(), "' (", node_.op_type(), ")");
}

const Tensor& NodeContext::in(size_t i) const {
  require(has(i), "input ", i, " is required but missing");
  return inputs_[i];
}

Tensor NodeContext::value(size_t i) const {
  const Tensor& t = in(i);
  if (t.is_symbolic()) {
    std::string input = input_name_of_ ? input_name_of_(t) : std::string();
    throw NeedsValueError(
        str_cat(where(), ": input ", i, " ('", node_.input(static_cast<int>(i)),
                "') must be known when the model is imported (it gives a shape, axes or sizes), "
                "but is computed from the graph's inputs",
                input.empty() ? std::string() : str_cat("; fix input '", input, "' as a constant")),
        input);
  }
  return t.detach();
}

std::vector<int64_t> NodeContext::ints(size_t i) const {
  Tensor v = value(i);
  require(is_integral(v.dtype()), "input ", i, " must be integers, got ", dtype_name(v.dtype()));
  return v.to_vector<int64_t>();
}
std::vector<double> NodeContext::doubles(size_t i) const { return value(i).to_vector<double>(); }
double NodeContext::scalar(size_t i) const {
  Tensor v = value(i);
  require(v.numel() == 1, "input ", i, " must hold one value, got shape ", v.shape());
  return v.to_vector<double>()[0];
}

const ::onnx::AttributeProto* NodeContext::find(const char* name) const {
  for (const auto& a : node_.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

int64_t NodeContext::attr_i(const char* name, int64_t fallback) const {
  const auto* a = find(name);
  if (a == nullptr) return fallback;
  require(a->type() == ::onnx::AttributeProto::INT, "attribute ", name, " must be an int");
  return a->i();
}
double NodeContext::attr_f(const char* name, double fallback) const {
  const auto* a = find(name);
  if (a == nullptr) return fallback;
  require(a->type() == ::onnx::AttributeProto::FLOAT, "attribute ", name, " must be a float");
  return a->f();
}
std::string NodeContext::attr_s(const char* name, const std::string& fallback) const {
  const auto* a = find(name);
  if (a == nullptr) return fallback;
  require(a->type() == ::onnx::AttributeProto::STRING, "attribute ", name, " must be a string");
  return a->s();
}
std::vector<int64_t> NodeContext::attr_ints(const char* name, std::vector<int64_t> fallback) const {
  const auto* a = find(name);
  if (a == nullptr) return fallback;
  require(a->type() == ::onnx::AttributeProto::INTS, "attribute ", name, " must be ints");
  return {a->ints().begin(), a->ints().end()};
}
std::vector<double> NodeContext::attr_floats(const char* name, std::vector<double> fallback) const {
  const auto* a = find(name);
  if (a == nullptr) return fallback;
  require(a->type() == ::onnx::AttributeProto::FLOATS, "attribute ", name, " must be floats");
  return {a->floats().begin(), a->floats().end()};
}
Tensor NodeContext::attr_tensor(const char* name) const {
  const auto* a = find(name);
  require(a != nullptr && a->type() == ::onnx::AttributeProto::TENSOR, "attribute ", name,
          " must be a tensor");
  return tensor_from_proto(a->t(), "", int64_t{1} << 31);
}

int64_t NodeContext::axis(int64_t axis, int64_t rank) const {
  require(axis >= -rank && axis < std::max<int64_t>(rank, 1), "axis ", axis,
          " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> normalize_axes(const NodeContext& c, std::vector<int64_t> axes, int64_t rank) {
  for (int64_t& a : axes) a = c.axis(a, rank);
  std::sort(axes.begin(), axes.end());
  c.require(std::adjacent_find(axes.begin(), axes.end()) == axes.end(), "axes repeat an axis");
  return axes;
}

Tensor wrap_negative_indices(const Tensor& indices, int64_t size) {
  Tensor idx = indices.dtype() == DType::Int64 ? indices : cast(indices, DType::Int64);
  return where(lt(idx, scalar_tensor(0, DType::Int64)), add(idx, Scalar(size)), idx);
}

const OpTable& op_table() {
  static const OpTable table = [] {
    OpTable t;
    add_elementwise_ops(t);
    add_shape_ops(t);
    add_reduce_ops(t);
    add_nn_ops(t);
    add_loss_ops(t);
    add_quant_ops(t);
    add_recurrent_ops(t);
    add_signal_ops(t);
    add_value_dependent_ops(t);
    add_training_ops(t);
    add_grid_sample_ops(t);
    return t;
  }();
  return table;
}

std::string op_key(const ::onnx::NodeProto& node) {
  if (node.domain().empty() || node.domain() == "ai.onnx") return node.op_type();
  return node.domain() + ":" + node.op_type();
}

// ------------------------------------------------------------------ loading

namespace {

constexpr int64_t kMaxOpset = 17;

// Whether `t`, a small integer tensor known at import, holds a size unknown until run time
// (as Shape reads it: the size the tracer gave that dimension, or a multiple of it).
bool holds_traced_size(const Tensor& t) {
  OpTracer* tracer = active_tracer();
  if (tracer == nullptr || !t.defined() || t.is_symbolic() || is_floating(t.dtype()) ||
      t.dtype() == DType::Bool || t.numel() > 64) {
    return false;
  }
  std::vector<int64_t> values;
  {
    TracerScope untraced(nullptr);  // reading the values is not part of the graph
    NoGradGuard no_grad;
    values = t.to(DType::Int64).to_vector<int64_t>();
  }
  for (int64_t v : values) {
    if (tracer->has_unknown_dim(Shape{v})) return true;
  }
  return false;
}

// Ops computed at import time even on sizes unknown until run time: they move sizes
// around without making tensors of those sizes.
const std::unordered_set<std::string> kShapeArithmetic = {
    "Shape", "Concat", "Slice", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Cast", "Identity"};

bool default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

struct Prepared {
  const ::onnx::GraphProto* graph = nullptr;
  int64_t opset = 0;
  std::unordered_map<std::string, Tensor> initializers;
  std::vector<graph::TensorSpec> signature;
  std::vector<std::string> input_names;
};

// The checks that need no tensors: opsets, domains, unsupported ops (all listed at once),
// and that every node reads values defined before it.
int64_t check_model(const ::onnx::ModelProto& model) {
  check(model.has_graph(), "onnx import", "the model has no graph");
  int64_t opset = -1;
  for (const auto& o : model.opset_import()) {
    if (default_domain(o.domain())) opset = o.version();
  }
  if (opset < 0 && model.ir_version() < 3) opset = 1;
  if (opset > kMaxOpset) {
    throw UnsupportedError(
        str_cat("the model uses opset ", opset, "; Tessera imports opsets up to ", kMaxOpset));
  }
  const auto& g = model.graph();
  std::vector<std::string> problems;
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    std::string name = node.name().empty() ? str_cat("#", i) : node.name();
    if (op_table().contains(op_key(node))) continue;
    if (!default_domain(node.domain())) {
      problems.push_back(str_cat(node.op_type(), " (node '", name, "', domain '", node.domain(),
                                 "': unknown domain or op)"));
    } else {
      problems.push_back(str_cat(node.op_type(), " (node '", name, "', opset ", opset, ")"));
    }
  }
  if (!problems.empty()) {
    std::string list;
    for (const auto& p : problems) list += str_cat("\n  ", p);
    throw UnsupportedError(
        str_cat(problems.size(), " unsupported node", problems.size() == 1 ? "" : "s", ":", list));
  }
  if (opset < 1) {
    // Models of other domains only (the training optimizers) use no default-domain op.
    for (const auto& node : g.node()) {
      check(!default_domain(node.domain()), "onnx import",
            "the model imports no opset of the default domain");
    }
    opset = kMaxOpset;
  }
  if (g.sparse_initializer_size() > 0) {
    throw UnsupportedError("sparse initializers are not supported");
  }
  std::set<std::string> defined;
  for (const auto& init : g.initializer()) defined.insert(init.name());
  for (const auto& input : g.input()) defined.insert(input.name());
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    for (const auto& in : node.input()) {
      check(in.empty() || defined.contains(in), "onnx import", "node '", node.name(), "' (",
            node.op_type(), ") reads '", in,
            "', which no earlier node, input or initializer defines (the graph is cyclic, "
            "unsorted or incomplete)");
    }
    for (const auto& out : node.output()) {
      if (!out.empty()) defined.insert(out);
    }
  }
  for (const auto& out : g.output()) {
    check(defined.contains(out.name()), "onnx import", "graph output '", out.name(),
          "' is not defined by any node, input or initializer");
  }
  return opset;
}

graph::TensorSpec input_spec(const ::onnx::ValueInfoProto& info, const ImportOptions& options,
                             std::map<std::string, int64_t>& symbols) {
  const std::string where = str_cat("graph input '", info.name(), "'");
  for (const auto& [name, shape] : options.input_shapes) {
    if (name != info.name()) continue;
    check(info.type().has_tensor_type(), "onnx import", where, " is not a tensor");
    return {shape, dtype_from_onnx(info.type().tensor_type().elem_type(), where), info.name()};
  }
  if (!info.type().has_tensor_type()) {
    throw UnsupportedError(
        str_cat(where, " is a sequence, map or optional; only tensors are supported"));
  }
  const auto& tt = info.type().tensor_type();
  graph::TensorSpec spec{{}, dtype_from_onnx(tt.elem_type(), where), info.name()};
  check(tt.has_shape(), "onnx import", where,
        " has no shape (not even a rank); give one in ImportOptions::input_shapes");
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      check(d.dim_value() >= 0, "onnx import", where, " has a negative dimension");
      spec.shape.push_back(d.dim_value());
      continue;
    }
    // Each named dim is one unknown size (-1, -2 ...); unnamed ones are each their own.
    std::string key = d.has_dim_param() ? d.dim_param() : str_cat("#", symbols.size());
    auto it = symbols.find(key);
    if (it == symbols.end())
      it = symbols.emplace(key, -static_cast<int64_t>(symbols.size()) - 1).first;
    spec.shape.push_back(it->second);
  }
  return spec;
}

ImportedModel import_model(const ::onnx::ModelProto& model, const ImportOptions& options,
                           const std::string& base_dir) {
  const int64_t opset = check_model(model);
  const auto& g = model.graph();

  std::unordered_map<std::string, Tensor> known;  // initializers and constant inputs
  graph::TraceOptions trace_options;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  int64_t external_budget = options.max_external_bytes > 0 ? options.max_external_bytes
                            : pages > 0 && page > 0
                                ? static_cast<int64_t>(pages) * static_cast<int64_t>(page)
                                : std::numeric_limits<int64_t>::max();
  for (const auto& init : g.initializer()) {
    check(!init.name().empty(), "onnx import", "an initializer has no name");
    Tensor t = tensor_from_proto(init, base_dir, options.max_bytes, &external_budget);
    if (options.trainable && is_floating(t.dtype())) {
      t.set_requires_grad();
      trace_options.variables.emplace_back(init.name(), t);
    }
    known[init.name()] = t;
  }
  for (const auto& [name, t] : options.constant_inputs) known[name] = t;

  std::vector<graph::TensorSpec> signature;
  std::vector<std::string> input_names;
  std::map<std::string, int64_t> symbols;
  for (const auto& info : g.input()) {
    if (known.contains(info.name())) continue;  // an initializer listed as input (IR < 4)
    signature.push_back(input_spec(info, options, symbols));
    input_names.push_back(info.name());
  }

  std::vector<std::string> output_names;
  for (const auto& out : g.output()) output_names.push_back(out.name());

  auto body = [&](const TensorList& inputs) -> TensorList {
    std::unordered_map<std::string, Tensor> values = known;
    std::unordered_map<const TensorImpl*, std::string> input_of;
    for (size_t i = 0; i < inputs.size(); ++i) {
      values[input_names[i]] = inputs[i];
      input_of[inputs[i].impl()] = input_names[i];
    }
    auto input_name_of = [&](const Tensor& t) {
      auto it = input_of.find(t.impl());
      return it == input_of.end() ? std::string() : it->second;
    };
    // Known values may hold sizes unknown until run time (Shape reads them as their traced
    // sizes). Shape arithmetic on them is computed now; an op that makes a tensor of such a
    // size (ConstantOfShape) is traced instead, so that the size stays unknown.
    for (const auto& node : g.node()) {
      const OpMapping& mapping = op_table().at(op_key(node));
      TensorList node_inputs;
      bool all_known = true, sized_by_input = false;
      for (const auto& name : node.input()) {
        Tensor t = name.empty() ? Tensor() : values.at(name);
        if (t.defined() && (t.is_symbolic() || t.requires_grad())) all_known = false;
        sized_by_input = sized_by_input || holds_traced_size(t);
        node_inputs.push_back(t);
      }
      if (sized_by_input && !kShapeArithmetic.contains(node.op_type())) all_known = false;
      NodeContext context(node, opset, std::move(node_inputs), input_name_of);
      TensorList outputs;
      try {
        if (all_known && !mapping.random) {
          NoGradGuard no_grad;
          TracerScope untraced(nullptr);
          outputs = mapping.convert(context);
        } else {
          outputs = mapping.convert(context);
        }
      } catch (const UnsupportedError&) {
        throw;
      } catch (const NeedsValueError&) {
        throw;
      } catch (const Error& e) {
        fail("onnx import", context.where(), ": ", e.what());
      }
      for (int i = 0; i < node.output_size(); ++i) {
        if (node.output(i).empty()) continue;
        context.require(static_cast<size_t>(i) < outputs.size() && outputs[i].defined(), "output ",
                        i, " ('", node.output(i), "') is not produced by this mapping");
        values[node.output(i)] = outputs[i];
      }
    }
    TensorList results;
    for (const auto& name : output_names) results.push_back(values.at(name));
    return results;
  };

  ImportedModel imported;
  imported.graph = graph::trace(body, signature, trace_options);
  imported.graph = graph::optimize(std::move(imported.graph));
  imported.input_names = std::move(input_names);
  imported.output_names = std::move(output_names);
  imported.opset = opset;
  return imported;
}

}  // namespace

ImportedModel load_bytes(std::span<const uint8_t> bytes, const ImportOptions& options,
                         const std::string& base_dir) {
  check(static_cast<int64_t>(bytes.size()) <= options.max_bytes, "onnx import", "the model is ",
        bytes.size(), " bytes, over the ", options.max_bytes, "-byte limit");
  ::onnx::ModelProto model;
  check(bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()) &&
            model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
        "onnx import", "the file is not an ONNX model (protobuf parsing failed)");
  return import_model(model, options, base_dir);
}

ImportedModel load(const std::string& path, const ImportOptions& options) {
  std::string bytes = read_file_bytes(path, options.max_bytes);
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return load_bytes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, options, dir);
}

}  // namespace tessera::onnx
