// Graph construction, validation and printing.
#include "tessera/graph/graph.h"

#include <mutex>
#include <set>
#include <sstream>

#include "tessera/graph/control_flow.h"

namespace tessera::graph {

const char* value_kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::input:
      return "input";
    case ValueKind::constant:
      return "constant";
    case ValueKind::variable:
      return "variable";
    case ValueKind::op_output:
      return "op output";
  }
  return "?";
}

int Graph::add_value(Value v) {
  values.push_back(std::move(v));
  return static_cast<int>(values.size()) - 1;
}

int Graph::add_node(const OpDef& def, Attrs attrs, std::vector<int> node_inputs,
                    const MetaList& metas) {
  int id = static_cast<int>(nodes.size());
  Node n{&def, std::move(attrs), std::move(node_inputs), {}};
  for (size_t i = 0; i < metas.size(); ++i) {
    n.outputs.push_back(add_value(Value{.kind = ValueKind::op_output,
                                        .dtype = metas[i].dtype,
                                        .shape = metas[i].shape,
                                        .node = id,
                                        .output_index = static_cast<int>(i)}));
  }
  nodes.push_back(std::move(n));
  return id;
}

void Graph::validate() const {
  const int nv = static_cast<int>(values.size());
  auto check_id = [&](int id, const char* what) {
    check(id >= 0 && id < nv, "graph", what, " refers to value %", id, ", but the graph has ", nv,
          " values");
  };
  for (int i = 0; i < nv; ++i) {
    const Value& v = values[i];
    for (int64_t d : v.shape) {
      check(d >= 0 || d == kUnknownDim, "graph", "value %", i, " has invalid dimension ", d);
    }
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) {
      check(v.data.defined(), "graph", value_kind_name(v.kind), " %", i, " has no data");
      check(v.data.dtype() == v.dtype && v.data.shape() == v.shape, "graph",
            value_kind_name(v.kind), " %", i, " ('", v.name, "') is declared ",
            format_type(v.dtype, v.shape), " but holds ",
            format_type(v.data.dtype(), v.data.shape()));
    } else if (v.kind == ValueKind::op_output) {
      check(v.node >= 0 && v.node < static_cast<int>(nodes.size()), "graph", "value %", i,
            " names producer node ", v.node, ", which does not exist");
      const auto& outs = nodes[v.node].outputs;
      check(v.output_index >= 0 && v.output_index < static_cast<int>(outs.size()) &&
                outs[v.output_index] == i,
            "graph", "value %", i, " and node ", v.node, " disagree about who produces it");
    }
  }
  std::vector<bool> is_input(values.size(), false);
  for (int id : inputs) {
    check_id(id, "a graph input");
    check(values[id].kind == ValueKind::input, "graph", "graph input %", id, " is a ",
          value_kind_name(values[id].kind));
    check(!is_input[id], "graph", "value %", id, " is listed twice as an input");
    is_input[id] = true;
  }
  for (int i = 0; i < nv; ++i) {
    check(values[i].kind != ValueKind::input || is_input[i], "graph", "input value %", i,
          " is not among the graph's inputs");
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    check(node.def != nullptr, "graph", "node ", n, " has no op");
    for (int id : node.inputs) {
      check_id(id, "a node input");
      const Value& v = values[id];
      // Topological order: an op output is used only after the node producing it, which
      // also rules out cycles.
      check(v.kind != ValueKind::op_output || v.node < static_cast<int>(n), "graph", "node ", n,
            " (", node.op(), ") uses value %", id, " before node ", v.node,
            " produces it (cycle or unsorted graph)");
    }
    check(!node.def->view || (node.inputs.size() >= 1 && node.outputs.size() == 1), "graph",
          "node ", n, " (", node.op(), ") is a view op and needs an input and one output");
    for (int id : node.outputs) {
      check_id(id, "a node output");
      check(values[id].kind == ValueKind::op_output && values[id].node == static_cast<int>(n),
            "graph", "node ", n, " (", node.op(), ") lists output %", id,
            " that it does not produce");
    }
  }
  for (int id : outputs) check_id(id, "a graph output");
  for (size_t t = 0; t < tied.size(); ++t) {
    const TiedDim& d = tied[t];
    check(d.symbol >= 0 && d.symbol < static_cast<int>(symbols.size()) && d.input >= 0 &&
              d.input < static_cast<int>(inputs.size()) && d.axis >= 0 &&
              d.axis < static_cast<int>(values[inputs[d.input]].shape.size()) &&
              values[inputs[d.input]].shape[d.axis] == kUnknownDim,
          "graph", "tied dimension ", t, " does not name an unknown input dimension");
  }
  for (int n : effects) {
    check(n >= 0 && n < static_cast<int>(nodes.size()) && nodes[n].def->stateful(), "graph",
          "effect ", n, " is not a node that writes a variable");
  }
  for (size_t s = 0; s < symbols.size(); ++s) {
    const Symbol& sym = symbols[s];
    check(sym.input >= 0 && sym.input < static_cast<int>(inputs.size()), "graph",
          "unknown dimension ", s, " reads input ", sym.input, ", which does not exist");
    const Dims& shape = values[inputs[sym.input]].shape;
    check(sym.axis >= 0 && sym.axis < static_cast<int>(shape.size()) &&
              shape[sym.axis] == kUnknownDim,
          "graph", "unknown dimension ", s, " reads axis ", sym.axis, " of input ", sym.input,
          ", which is not an unknown dimension");
  }
}

std::vector<bool> Graph::written_values() const {
  std::vector<bool> written(values.size(), false);
  for (int e : effects) {
    const Node& node = nodes[e];
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.def->writes_input(i)) written[node.inputs[i]] = true;
    }
  }
  return written;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const Value& v : values) {
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) n += v.data.numel();
  }
  return n;
}

std::string format_type(DType dtype, const Dims& shape) {
  std::ostringstream os;
  os << dtype_name(dtype) << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ",";
    if (shape[i] < 0) {
      os << "?";
    } else {
      os << shape[i];
    }
  }
  os << "]";
  return os.str();
}

static void print_int(std::ostream& os, int64_t v) {
  if (is_dim_marker(v)) {
    os << "?" << marker_symbol(v);
  } else {
    os << v;
  }
}

std::string format_attrs(const Attrs& attrs) {
  std::ostringstream os;
  bool first = true;
  for (const auto& [name, value] : attrs.items()) {
    if (!first) os << ", ";
    first = false;
    os << name << "=";
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            print_int(os, v);
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            os << "[";
            for (size_t i = 0; i < v.size(); ++i) {
              if (i) os << ",";
              print_int(os, v[i]);
            }
            os << "]";
          } else if constexpr (std::is_same_v<T, DType>) {
            os << dtype_name(v);
          } else if constexpr (std::is_same_v<T, bool>) {
            os << (v ? "true" : "false");
          } else if constexpr (std::is_same_v<T, SubgraphAttr>) {
            os << "graph(" << (v ? v->graph.nodes.size() : 0) << " nodes)";
          } else {
            os << v;
          }
        },
        value);
  }
  return os.str();
}

static std::string value_label(const Graph& g, int id) {
  const Value& v = g.values[id];
  std::string s = str_cat("%", id);
  if (!v.name.empty()) s += str_cat("(", v.name, ")");
  return s;
}

std::string Graph::to_string() const {
  std::ostringstream os;
  os << "graph(";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (i) os << ", ";
    os << value_label(*this, inputs[i]) << ": "
       << format_type(values[inputs[i]].dtype, values[inputs[i]].shape);
  }
  os << ") {\n";
  for (size_t i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    if (v.kind != ValueKind::constant && v.kind != ValueKind::variable) continue;
    os << "  " << value_label(*this, static_cast<int>(i)) << " = " << value_kind_name(v.kind)
       << " : " << format_type(v.dtype, v.shape) << "\n";
  }
  for (const Node& n : nodes) {
    os << "  ";
    for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << "%" << n.outputs[i];
    os << " = " << (n.def->stateful() ? "!" : "") << n.op() << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << "%" << n.inputs[i];
    os << ")";
    if (!n.attrs.items().empty()) os << " {" << format_attrs(n.attrs) << "}";
    os << " :";
    for (int id : n.outputs) os << " " << format_type(values[id].dtype, values[id].shape);
    os << "\n";
    // Branches and loop bodies, indented under their node.
    for (const auto& [name, value] : n.attrs.items()) {
      const auto* sub = std::get_if<SubgraphAttr>(&value);
      if (sub == nullptr || *sub == nullptr) continue;
      std::istringstream lines((*sub)->graph.to_string());
      os << "    " << name << ": ";
      bool first = true;
      for (std::string line; std::getline(lines, line); first = false) {
        os << (first ? "" : "    ") << line << "\n";
      }
    }
  }
  os << "  return";
  for (size_t i = 0; i < outputs.size(); ++i) os << (i ? ", " : " ") << "%" << outputs[i];
  os << "\n}\n";
  return os.str();
}

static std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string Graph::to_dot() const {
  std::ostringstream os;
  os << "digraph tessera {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  // Sources (inputs, constants, variables) as ellipses; ops as boxes; edges carry types.
  for (size_t i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    if (v.kind == ValueKind::op_output) continue;
    std::string label = v.name.empty() ? str_cat("%", i) : v.name;
    os << "  v" << i << " [shape=ellipse, label=\"" << dot_escape(label) << "\\n"
       << format_type(v.dtype, v.shape) << "\"";
    if (v.kind == ValueKind::input) os << ", style=filled, fillcolor=lightblue";
    os << "];\n";
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    os << "  n" << n << " [shape=box, label=\"" << node.op();
    if (!node.attrs.items().empty()) os << "\\n" << dot_escape(format_attrs(node.attrs));
    os << "\"];\n";
    for (int id : node.inputs) {
      const Value& v = values[id];
      std::string from = v.kind == ValueKind::op_output ? str_cat("n", v.node) : str_cat("v", id);
      os << "  " << from << " -> n" << n << " [label=\"" << format_type(v.dtype, v.shape)
         << "\"];\n";
    }
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Value& v = values[outputs[i]];
    os << "  out" << i << " [shape=ellipse, style=filled, fillcolor=lightgreen, label=\"output "
       << i << "\\n"
       << format_type(v.dtype, v.shape) << "\"];\n";
    std::string from =
        v.kind == ValueKind::op_output ? str_cat("n", v.node) : str_cat("v", outputs[i]);
    os << "  " << from << " -> out" << i << ";\n";
  }
  os << "}\n";
  return os.str();
}

const char* intern_name(const std::string& name) {
  static std::mutex mutex;
  static auto* names = new std::set<std::string>();  // never freed: Attrs keep pointers
  std::lock_guard<std::mutex> lock(mutex);
  return names->insert(name).first->c_str();
}

}  // namespace tessera::graph
