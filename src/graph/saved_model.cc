// Saved models in flatbuffers (see saved_model.h and schema/saved_model.fbs).
#include "tessera/graph/saved_model.h"

#include <cstring>
#include <map>
#include <sstream>

#include "saved_model_generated.h"
#include "tessera/graph/control_flow.h"
#include "tessera/io/atomic_file.h"
#include "tessera/ops/fused.h"

namespace tessera::graph {
namespace {

namespace fb = tessera::fb;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

constexpr const char* kLoad = "load_model";

// Format version 1 stored fused_elementwise programs as (kind, code, a, b) per
// instruction, where code was a position in the kernels' enums of that time. These tables
// freeze those positions, so files of version 1 keep loading: the program is rewritten in
// today's form, which names ops ("ops", "registers").
constexpr const char* kVersion1Unary[] = {"neg",  "abs",  "exp",    "tanh", "sigmoid",
                                          "relu", "sqrt", "square", "silu"};
constexpr const char* kVersion1Binary[] = {"add",     "sub",     "mul",          "div",
                                           "maximum", "minimum", "relu_backward"};

Attrs upgrade_version1_program(const Attrs& attrs, const std::string& where) {
  check(attrs.has("program"), kLoad, where, ": a version-1 fused_elementwise without 'program'");
  const std::vector<int64_t>& program = attrs.ints("program");
  check(!program.empty() && program.size() % 4 == 0, kLoad, where,
        ": a version-1 program needs 4 integers per instruction, got ", program.size());
  std::string ops;
  std::vector<int64_t> registers;
  for (size_t i = 0; i < program.size(); i += 4) {
    const int64_t kind = program[i], code = program[i + 1];
    const bool unary = kind == 0 && code >= 0 && code < int64_t{std::size(kVersion1Unary)};
    const bool binary = kind == 1 && code >= 0 && code < int64_t{std::size(kVersion1Binary)};
    check(unary || binary, kLoad, where, ": version-1 instruction ", i / 4, " has unknown code (",
          kind, ", ", code, ")");
    if (i > 0) ops += ' ';
    ops += unary ? kVersion1Unary[code] : kVersion1Binary[code];
    registers.insert(registers.end(), {program[i + 2], unary ? int64_t{-1} : program[i + 3]});
  }
  return Attrs{{"ops", ops}, {"registers", registers}};
}
// Bounds on what a file may declare: dimensions and integer attributes within 2^31 (so
// that the products ops' shape inference forms stay in range), at most 2^40 elements.
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr int64_t kMaxAttr = int64_t{1} << 31;

// ------------------------------------------------------------------ writing

struct WeightTable;
Offset<fb::Graph> write_graph(FlatBufferBuilder& b, const Graph& g, WeightTable& weights);

Offset<fb::Attr> write_attr(FlatBufferBuilder& b, const char* name, const AttrValue& value,
                            WeightTable& weights) {
  auto n = b.CreateString(name);
  Offset<flatbuffers::Vector<int64_t>> ints;
  Offset<flatbuffers::String> str;
  Offset<fb::Graph> sub;
  if (const auto* v = std::get_if<std::vector<int64_t>>(&value)) ints = b.CreateVector(*v);
  if (const auto* s = std::get_if<std::string>(&value)) str = b.CreateString(*s);
  if (const auto* g = std::get_if<SubgraphAttr>(&value)) {
    check(*g != nullptr, "save_model", "attribute '", name, "' holds no graph");
    sub = write_graph(b, (*g)->graph, weights);
  }
  fb::AttrBuilder a(b);
  a.add_name(n);
  if (const auto* i = std::get_if<int64_t>(&value)) {
    a.add_kind(fb::AttrKind_Int);
    a.add_i(*i);
  } else if (const auto* f = std::get_if<double>(&value)) {
    a.add_kind(fb::AttrKind_Float);
    a.add_f(*f);
  } else if (const auto* x = std::get_if<bool>(&value)) {
    a.add_kind(fb::AttrKind_Bool);
    a.add_b(*x);
  } else if (std::holds_alternative<std::vector<int64_t>>(value)) {
    a.add_kind(fb::AttrKind_Ints);
    a.add_ints(ints);
  } else if (std::holds_alternative<std::string>(value)) {
    a.add_kind(fb::AttrKind_String);
    a.add_s(str);
  } else if (std::holds_alternative<SubgraphAttr>(value)) {
    a.add_kind(fb::AttrKind_Subgraph);
    a.add_graph(sub);
  } else {
    a.add_kind(fb::AttrKind_DType);
    a.add_i(static_cast<int64_t>(std::get<DType>(value)));
  }
  return a.Finish();
}

// Weights shared between signatures (the same tensor) are stored once.
struct WeightTable {
  std::map<const TensorImpl*, int> index;
  std::vector<Tensor> tensors;
  std::vector<std::string> names;
  std::vector<bool> variable;
  int add(const Value& v) {
    auto it = index.find(v.data.impl());
    if (it != index.end()) return it->second;
    int id = static_cast<int>(tensors.size());
    index.emplace(v.data.impl(), id);
    tensors.push_back(v.data);
    names.push_back(v.name);
    variable.push_back(v.kind == ValueKind::variable);
    return id;
  }
};

Offset<fb::Graph> write_graph(FlatBufferBuilder& b, const Graph& g, WeightTable& weights) {
  std::vector<Offset<fb::Value>> values;
  for (const Value& v : g.values) {
    int weight = -1;
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) weight = weights.add(v);
    auto shape = b.CreateVector(v.shape.vec());
    auto name = b.CreateString(v.name);
    values.push_back(fb::CreateValue(b, static_cast<fb::ValueKind>(v.kind),
                                     static_cast<uint8_t>(v.dtype), shape, v.node, v.output_index,
                                     name, weight));
  }
  std::vector<Offset<fb::Node>> nodes;
  for (const Node& n : g.nodes) {
    std::vector<Offset<fb::Attr>> attrs;
    for (const auto& [name, value] : n.attrs.items()) {
      attrs.push_back(write_attr(b, name, value, weights));
    }
    nodes.push_back(fb::CreateNode(b, b.CreateString(n.op()), b.CreateVector(attrs),
                                   b.CreateVector(n.inputs), b.CreateVector(n.outputs)));
  }
  std::vector<Offset<fb::Symbol>> symbol_offsets;
  for (const Symbol& s : g.symbols) symbol_offsets.push_back(fb::CreateSymbol(b, s.input, s.axis));
  std::vector<Offset<fb::TiedDim>> tied;
  for (const TiedDim& t : g.tied) tied.push_back(fb::CreateTiedDim(b, t.input, t.axis, t.symbol));
  return fb::CreateGraph(b, b.CreateVector(values), b.CreateVector(nodes), b.CreateVector(g.inputs),
                         b.CreateVector(g.outputs), b.CreateVector(symbol_offsets),
                         b.CreateVector(g.effects), b.CreateVector(tied));
}

// ------------------------------------------------------------------ reading

DType read_dtype(int64_t v, const std::string& where) {
  check(v >= 0 && v < kNumDTypes, kLoad, where, " has unknown dtype code ", v);
  return static_cast<DType>(v);
}

// The verifier checks a vector's length field, not that 8-byte elements are 8-byte aligned
// in a hostile file: copy them out instead of reading them in place.
std::vector<int64_t> read_longs(const flatbuffers::Vector<int64_t>* v) {
  std::vector<int64_t> out;
  if (v == nullptr) return out;
  out.resize(v->size());
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(int64_t));
  return out;
}

Dims read_shape(const flatbuffers::Vector<int64_t>* shape_field, bool allow_unknown,
                const std::string& where) {
  Dims out;
  std::vector<int64_t> shape = read_longs(shape_field);
  check(shape.size() <= 16, kLoad, where, " has ", shape.size(), " dimensions (at most 16)");
  int64_t numel = 1;
  for (int64_t d : shape) {
    check((d >= 0 || (allow_unknown && d == kUnknownDim)) && d <= kMaxDim, kLoad, where,
          " has invalid dimension ", d);
    if (d > 0) {
      check(numel <= kMaxElements / d, kLoad, where, " has more than 2^40 elements");
      numel *= d;
    }
    out.push_back(d);
  }
  return out;
}

std::vector<int> read_ids(const flatbuffers::Vector<int32_t>* ids) {
  std::vector<int> out;
  if (ids != nullptr) out.assign(ids->begin(), ids->end());
  return out;
}

int64_t checked_int(int64_t v, const std::string& where) {
  check(is_dim_marker(v) || (v >= -kMaxAttr && v <= kMaxAttr), kLoad, where,
        " has an integer attribute out of range: ", v);
  return v;
}

Graph read_graph(const fb::Graph& fg, const std::vector<Tensor>& weights, const fb::SavedModel& m,
                 const std::string& sig);

AttrValue read_attr(const fb::Attr& a, const std::string& where, const std::vector<Tensor>& weights,
                    const fb::SavedModel& m) {
  switch (a.kind()) {
    case fb::AttrKind_Int:
      return checked_int(a.i(), where);
    case fb::AttrKind_Float:
      return a.f();
    case fb::AttrKind_Bool:
      return a.b();
    case fb::AttrKind_Ints: {
      std::vector<int64_t> v = read_longs(a.ints());
      check(v.size() <= 64, kLoad, where, " has an attribute list of ", v.size(), " integers");
      for (int64_t x : v) checked_int(x, where);
      return v;
    }
    case fb::AttrKind_String:
      return a.s() ? a.s()->str() : std::string();
    case fb::AttrKind_DType:
      return read_dtype(a.i(), where);
    case fb::AttrKind_Subgraph:
      // Nesting is bounded by the verifier's depth limit.
      check(a.graph() != nullptr, kLoad, where, " has a subgraph attribute without a graph");
      return std::make_shared<const Subgraph>(
          read_graph(*a.graph(), weights, m, str_cat(where, " attribute '", a.name()->str(), "'")));
  }
  fail(kLoad, where, " has unknown attribute kind ", static_cast<int>(a.kind()));
}

std::vector<Tensor> read_weights(const fb::SavedModel& m) {
  std::vector<Tensor> out;
  if (m.weights() == nullptr) return out;
  const size_t data_size = m.data() ? m.data()->size() : 0;
  for (flatbuffers::uoffset_t i = 0; i < m.weights()->size(); ++i) {
    const fb::Weight& w = *m.weights()->Get(i);
    std::string where = str_cat("weight ", i, " ('", w.name() ? w.name()->str() : "", "')");
    DType dtype = read_dtype(w.dtype(), where);
    Dims shape = read_shape(w.shape(), false, where);
    uint64_t bytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
    check(w.size() == bytes, kLoad, where, " is ", format_type(dtype, shape), " (", bytes,
          " bytes) but stores ", w.size(), " bytes");
    check(w.offset() <= data_size && w.size() <= data_size - w.offset(), kLoad, where,
          " lies outside the data block (offset ", w.offset(), ", size ", w.size(), ", block ",
          data_size, " bytes)");
    Tensor t = Tensor::empty(shape, dtype);
    if (bytes > 0) std::memcpy(t.data_ptr(), m.data()->data() + w.offset(), bytes);
    out.push_back(t);
  }
  return out;
}

Graph read_graph(const fb::Graph& fg, const std::vector<Tensor>& weights, const fb::SavedModel& m,
                 const std::string& sig) {
  Graph g;
  const auto* values = fg.values();
  const size_t nv = values ? values->size() : 0;
  for (size_t i = 0; i < nv; ++i) {
    const fb::Value& fv = *values->Get(static_cast<flatbuffers::uoffset_t>(i));
    std::string where = str_cat(sig, " value %", i);
    check(fv.kind() <= fb::ValueKind_OpOutput, kLoad, where, " has unknown kind ",
          static_cast<int>(fv.kind()));
    Value v{.kind = static_cast<ValueKind>(fv.kind()),
            .dtype = read_dtype(fv.dtype(), where),
            .shape = read_shape(fv.shape(), true, where),
            .node = fv.node(),
            .output_index = fv.output_index(),
            .name = fv.name() ? fv.name()->str() : ""};
    if (v.kind == ValueKind::constant || v.kind == ValueKind::variable) {
      check(fv.weight() >= 0 && static_cast<size_t>(fv.weight()) < weights.size(), kLoad, where,
            " refers to weight ", fv.weight(), ", but the file has ", weights.size());
      v.data = weights[fv.weight()];
      if (v.name.empty() && m.weights()->Get(fv.weight())->name()) {
        v.name = m.weights()->Get(fv.weight())->name()->str();
      }
    }
    g.values.push_back(std::move(v));
  }
  std::vector<std::string> unknown_ops;
  const auto* nodes = fg.nodes();
  for (flatbuffers::uoffset_t n = 0; nodes && n < nodes->size(); ++n) {
    const fb::Node& fn = *nodes->Get(n);
    std::string where = str_cat(sig, " node ", n);
    Node node;
    node.def = find_op(fn.op()->str());
    if (node.def == nullptr) {
      unknown_ops.push_back(str_cat("'", fn.op()->str(), "' (node ", n, ")"));
      continue;
    }
    for (flatbuffers::uoffset_t a = 0; fn.attrs() && a < fn.attrs()->size(); ++a) {
      const fb::Attr& fa = *fn.attrs()->Get(a);
      node.attrs.set(intern_name(fa.name()->str()), read_attr(fa, where, weights, m));
    }
    if (m.version() == 1 && node.def == &fused_elementwise_op()) {
      node.attrs = upgrade_version1_program(node.attrs, where);
    }
    node.inputs = read_ids(fn.inputs());
    node.outputs = read_ids(fn.outputs());
    g.nodes.push_back(std::move(node));
  }
  if (!unknown_ops.empty()) {
    std::ostringstream os;
    for (size_t i = 0; i < unknown_ops.size(); ++i) os << (i ? ", " : "") << unknown_ops[i];
    fail(kLoad, sig, " uses ops this build does not have: ", os.str());
  }
  g.inputs = read_ids(fg.inputs());
  g.outputs = read_ids(fg.outputs());
  g.effects = read_ids(fg.effects());
  for (flatbuffers::uoffset_t t = 0; fg.tied() && t < fg.tied()->size(); ++t) {
    const fb::TiedDim& d = *fg.tied()->Get(t);
    g.tied.push_back(TiedDim{d.input(), d.axis(), d.symbol()});
  }
  for (flatbuffers::uoffset_t s = 0; fg.symbols() && s < fg.symbols()->size(); ++s) {
    g.symbols.push_back(Symbol{fg.symbols()->Get(s)->input(), fg.symbols()->Get(s)->axis()});
  }
  try {
    g.validate();
    // Shapes against the weights, with every unknown size set to 2.
    std::vector<Dims> shapes;
    for (int id : g.inputs) {
      Dims d = g.values[id].shape;
      for (int64_t& x : d) x = x == kUnknownDim ? 2 : x;
      shapes.push_back(d);
    }
    infer_values(g, shapes);
  } catch (const Error& e) {
    fail(kLoad, sig, ": ", e.what());  // e.g. "graph: node 3 (matmul): matmul: ..."
  }
  return g;
}

}  // namespace

std::string serialize_model(const std::vector<SavedSignature>& signatures) {
  FlatBufferBuilder b(1 << 16);
  WeightTable weights;
  std::vector<Offset<fb::Signature>> sigs;
  for (const SavedSignature& s : signatures) {
    check(s.graph != nullptr, "save_model", "signature '", s.name, "' has no graph");
    s.graph->validate();
    auto graph = write_graph(b, *s.graph, weights);
    sigs.push_back(fb::CreateSignature(b, b.CreateString(s.name), graph));
  }
  // Weight bytes, each 64-byte aligned inside the block.
  std::vector<uint8_t> data;
  std::vector<Offset<fb::Weight>> metas;
  for (size_t i = 0; i < weights.tensors.size(); ++i) {
    Tensor t = weights.tensors[i].contiguous();
    size_t offset = (data.size() + 63) / 64 * 64;
    size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    data.resize(offset + bytes);
    if (bytes > 0) std::memcpy(data.data() + offset, t.data_ptr(), bytes);
    metas.push_back(
        fb::CreateWeight(b, b.CreateString(weights.names[i]), static_cast<uint8_t>(t.dtype()),
                         b.CreateVector(t.shape().vec()), offset, bytes, weights.variable[i]));
  }
  b.ForceVectorAlignment(data.size(), sizeof(uint8_t), 64);
  auto data_vec = b.CreateVector(data);
  auto model = fb::CreateSavedModel(b, kSavedModelVersion, b.CreateString("tessera 0.1"),
                                    b.CreateVector(sigs), b.CreateVector(metas), data_vec);
  fb::FinishSavedModelBuffer(b, model);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

void save_model(const std::string& path, const std::vector<SavedSignature>& signatures) {
  std::string bytes = serialize_model(signatures);
  io::write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

SavedModel SavedModel::load(const std::string& path) {
  std::string bytes = io::read_file_bytes(path);
  try {
    return from_bytes(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  } catch (const Error& e) {
    std::string_view what = e.what(), prefix = "load_model: ";
    if (what.substr(0, prefix.size()) == prefix) what.remove_prefix(prefix.size());
    fail(kLoad, path, ": ", what);
  }
}

SavedModel SavedModel::from_bytes(std::span<const uint8_t> bytes) {
  // The verifier checks alignment relative to the buffer, so copy into aligned memory.
  std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
  if (!bytes.empty()) std::memcpy(aligned.data(), bytes.data(), bytes.size());
  const auto* buf = reinterpret_cast<const uint8_t*>(aligned.data());
  check(bytes.size() >= 8 && fb::SavedModelBufferHasIdentifier(buf), kLoad,
        "not a Tessera saved model (the file does not start with the TSMD identifier)");
  flatbuffers::Verifier verifier(buf, bytes.size(), /*max_depth=*/64, /*max_tables=*/10'000'000);
  check(fb::VerifySavedModelBuffer(verifier), kLoad,
        "the file is corrupt or truncated (flatbuffer verification failed)");
  const fb::SavedModel& m = *fb::GetSavedModel(buf);
  check(m.version() >= 1 && m.version() <= kSavedModelVersion, kLoad, "format version ",
        m.version(), " is not supported (this build reads versions 1 to ", kSavedModelVersion, ")");
  std::vector<Tensor> weights = read_weights(m);
  SavedModel model;
  for (flatbuffers::uoffset_t i = 0; m.signatures() && i < m.signatures()->size(); ++i) {
    const fb::Signature& s = *m.signatures()->Get(i);
    std::string sig = str_cat("signature '", s.name()->str(), "'");
    auto g = std::make_shared<Graph>(read_graph(*s.graph(), weights, m, sig));
    model.signatures_.push_back({s.name()->str(), std::move(g)});
  }
  check(!model.signatures_.empty(), kLoad, "the model has no signatures");
  model.executors_.resize(model.signatures_.size());
  return model;
}

std::vector<std::string> SavedModel::signature_names() const {
  std::vector<std::string> names;
  for (const SavedSignature& s : signatures_) names.push_back(s.name);
  return names;
}

size_t SavedModel::index_of(const std::string& signature) const {
  for (size_t i = 0; i < signatures_.size(); ++i) {
    if (signatures_[i].name == signature) return i;
  }
  std::string names;
  for (const SavedSignature& s : signatures_) names += (names.empty() ? "" : ", ") + s.name;
  fail("saved model", "no signature '", signature, "' (it has: ", names, ")");
}

const Graph& SavedModel::graph(const std::string& signature) const {
  return *signatures_[index_of(signature)].graph;
}

Executor& SavedModel::executor(const std::string& signature) {
  size_t i = index_of(signature);
  if (!executors_[i]) executors_[i] = std::make_shared<Executor>(signatures_[i].graph);
  return *executors_[i];
}

TensorList SavedModel::run(const std::string& signature, const TensorList& inputs) {
  return executor(signature).run(inputs);
}

}  // namespace tessera::graph
