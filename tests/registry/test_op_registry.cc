// The test that walks the op registry (in the spirit of PyTorch's OpInfo and ggml's
// test-backend-ops): every registered op that declares samples (OpDef::samples) is run on
// each sample in every dtype its inference accepts, and checked
//   - against the same op computed at float64 (the scalar loops are the reference for the
//     SIMD and low-precision paths), cast to the op's output dtype, and against its
//     decomposition where it has one;
//   - traced into a graph and run by the executor (the same bits as eager, or within the
//     op's tolerance where plans time kernel choices), and through a saved-model round trip
//     (the graph's bits);
//   - for gradients, in float64, against central finite differences;
//   - through the ONNX exporter (exported, imported back, run) and the lite converter
//     (float32), where the op is lowered.
// What is not lowered, and which ops have no samples yet, are committed lists in this
// folder that may only shrink: an op that stops lowering fails, and an op that starts
// lowering must leave its list. TESSERA_REGISTRY_WRITE=1 rewrites the lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "../lite/run_lite.h"
#include "../test_util.h"
#include "tessera/convert/lite_converter.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/saved_model.h"
#include "tessera/graph/trace.h"
#include "tessera/io/onnx.h"

namespace tessera {
namespace {

constexpr DType kDtypes[] = {DType::Bool,     DType::UInt8,   DType::Int8,
                             DType::Int32,    DType::Int64,   DType::Float16,
                             DType::BFloat16, DType::Float32, DType::Float64};

// A sample's float64 values in `dtype`: integers from 2x the values (so [-2, 2) spans
// -4..3), unsigned ones from their magnitude, bools from the sign.
Tensor in_dtype(const Tensor& t, DType dtype) {
  if (is_floating(dtype)) return t.to(dtype);
  if (dtype == DType::Bool) return gt(t, zeros({}, DType::Float64));
  Tensor ints = floor(mul(t, 2.0));
  if (dtype == DType::UInt8) ints = abs(ints);
  return ints.to(dtype);
}

bool accepts(const OpDef& def, const TensorList& inputs, const Attrs& attrs) {
  try {
    if (def.infer) {
      def.infer(OpCall{inputs, attrs});
    } else {
      def.view(OpCall{inputs, attrs});  // view ops check their inputs as they make the view
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool all_floating(const TensorList& ts) {
  for (const Tensor& t : ts) {
    if (!is_floating(t.dtype())) return false;
  }
  return true;
}

// Equal shapes, dtypes and values (NaN equal to NaN): what the same kernels must give.
void expect_same(const TensorList& got, const TensorList& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << what;
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << what;
    std::vector<double> g = got[i].to_vector<double>(), w = want[i].to_vector<double>();
    for (size_t k = 0; k < g.size(); ++k) {
      if (std::isnan(w[k]) && std::isnan(g[k])) continue;
      ASSERT_EQ(g[k], w[k]) << what << " output " << i << " at " << k;
    }
  }
}

void expect_near(const TensorList& got, const TensorList& want, double rtol, double atol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    testing::expect_close(got[i], want[i], rtol, atol, what + " output " + std::to_string(i));
  }
}

// Tolerance of a computation in `dtype` against float64 rounded to it.
std::pair<double, double> tolerance(DType dtype) {
  switch (dtype) {
    case DType::Float16:
      return {2e-3, 2e-3};
    case DType::BFloat16:
      return {1.6e-2, 1.6e-2};
    case DType::Float32:
      return {2e-5, 2e-6};
    default:
      return {0, 0};
  }
}

std::string describe(const OpDef& def, const TensorList& inputs) {
  std::ostringstream os;
  os << def.name << "(";
  for (size_t i = 0; i < inputs.size(); ++i) {
    os << (i ? ", " : "") << dtype_name(inputs[i].dtype()) << inputs[i].shape();
  }
  os << ")";
  return os.str();
}

// What the walk found, compared with the committed lists at the end.
struct Findings {
  std::set<std::string> without_samples, not_exported_onnx, not_lowered_lite;
  int calls = 0, gradients = 0, exported = 0, lowered = 0;
};

void check_call(const OpDef& def, const TensorList& inputs, const Attrs& attrs, double scale,
                Findings& found) {
  const std::string what = describe(def, inputs);
  TensorList eager = run_op(def, inputs, attrs);
  ++found.calls;

  // The reference: the op at float64 (where it takes float64), rounded to its dtypes.
  TensorList wide;
  for (const Tensor& t : inputs) wide.push_back(t.to(DType::Float64));
  const DType dtype = inputs[0].dtype();
  if (dtype != DType::Float64 && accepts(def, wide, attrs)) {
    TensorList ref = run_op(def, wide, attrs);
    for (size_t i = 0; i < ref.size() && i < eager.size(); ++i)
      ref[i] = ref[i].to(eager[i].dtype());
    auto [rtol, atol] = tolerance(eager.empty() ? dtype : eager[0].dtype());
    expect_near(eager, ref, scale * rtol, scale * atol, what + " against float64");
  }

  // Fused and lighter forms against the ops they stand for.
  if (def.decompose) {
    auto [rtol, atol] = tolerance(eager.empty() ? dtype : eager[0].dtype());
    expect_near(eager, def.decompose(inputs, attrs), scale * std::max(rtol, 1e-6),
                scale * std::max(atol, 1e-7), what + " against its decomposition");
  }

  // Eager against graph mode and a saved model of the graph.
  std::vector<graph::TensorSpec> specs;
  for (const Tensor& t : inputs) specs.push_back({t.shape(), t.dtype(), ""});
  auto g = std::make_shared<graph::Graph>(
      graph::trace([&](const TensorList& in) { return run_op(def, in, attrs); }, specs));
  TensorList in_graph = graph::Executor(g).run(inputs);
  if (def.tunable) {  // plans time kernels that may sum in another order
    auto [rtol, atol] = tolerance(eager.empty() ? dtype : eager[0].dtype());
    expect_near(in_graph, eager, scale * std::max(rtol, 1e-6), scale * std::max(atol, 1e-7),
                what + " in graph mode");
  } else {
    expect_same(in_graph, eager, what + " in graph mode");
  }
  const std::string bytes = graph::serialize_model({{"serve", g}});
  graph::SavedModel saved =
      graph::SavedModel::from_bytes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  expect_same(saved.run(inputs), in_graph, what + " from a saved model");

  // Gradients at float64 against finite differences (small samples keep this quick).
  int64_t elements = 0;
  for (const Tensor& t : inputs) elements += t.numel();
  bool float64_out = !eager.empty();
  for (const Tensor& t : eager) float64_out = float64_out && t.dtype() == DType::Float64;
  if (def.grad && dtype == DType::Float64 && all_floating(inputs) && float64_out && elements > 0 &&
      elements <= 200) {
    testing::gradcheck([&](const std::vector<Tensor>& xs) { return run_op(def, xs, attrs)[0]; },
                       inputs, 1e-6, 1e-5, 1e-4, what);
    ++found.gradients;
  }

  // ONNX: exported, imported back by Tessera's importer, run.
  std::string onnx_bytes;
  try {
    onnx_bytes = onnx::to_bytes(*g);
  } catch (const Error&) {
    found.not_exported_onnx.insert(std::string(def.name) + " " + dtype_name(dtype));
  }
  if (!onnx_bytes.empty()) {
    onnx::ImportedModel m =
        onnx::load_bytes({reinterpret_cast<const uint8_t*>(onnx_bytes.data()), onnx_bytes.size()});
    TensorList back =
        graph::Executor(std::make_shared<graph::Graph>(std::move(m.graph))).run(inputs);
    // Low precisions: ops that ONNX writes as chains round after each step.
    auto [rtol, atol] = tolerance(eager.empty() ? dtype : eager[0].dtype());
    expect_near(back, eager, std::max(1e-5, 2 * rtol), std::max(1e-6, 2 * atol),
                what + " through ONNX");
    ++found.exported;
  }

  // The lite runtime computes float32. Layers take their weights as constants there, so
  // where the graph of inputs does not convert, the inputs after the first become
  // constants of the graph.
  if (dtype == DType::Float32 && all_floating(inputs) && !eager.empty() &&
      eager[0].dtype() == DType::Float32) {
    graph::Graph with_constants = graph::trace(
        [&](const TensorList& in) {
          TensorList all = inputs;
          all[0] = in[0];
          return run_op(def, all, attrs);
        },
        {specs[0]});
    std::vector<uint8_t> lite_bytes;
    TensorList lite_inputs = inputs;
    for (const graph::Graph* candidate : {g.get(), &with_constants}) {
      try {
        lite_bytes = convert::to_lite(*candidate).bytes;
        break;
      } catch (const Error&) {
        lite_inputs = {inputs[0]};
      }
    }
    if (lite_bytes.empty()) found.not_lowered_lite.insert(what);
    if (!lite_bytes.empty()) {
      expect_near(testing::run_lite(lite_bytes, lite_inputs, what), eager, 1e-5, 1e-5,
                  what + " in lite");
      ++found.lowered;
    }
  }
}

std::set<std::string> read_list(const std::string& name) {
  std::ifstream in(std::string(TESSERA_REGISTRY_DIR) + "/" + name);
  std::set<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.insert(line);
  }
  return lines;
}

// The committed list must hold exactly what the walk found; says which lines to add (a
// regression) or remove (progress).
void compare_list(const std::string& name, const std::string& header,
                  const std::set<std::string>& found) {
  if (std::getenv("TESSERA_REGISTRY_WRITE")) {
    std::ofstream out(std::string(TESSERA_REGISTRY_DIR) + "/" + name);
    out << header;
    for (const std::string& line : found) out << line << "\n";
    return;
  }
  std::set<std::string> committed = read_list(name);
  std::string added, removed;
  for (const std::string& s : found) {
    if (!committed.count(s)) added += "  " + s + "\n";
  }
  for (const std::string& s : committed) {
    if (!found.count(s)) removed += "  " + s + "\n";
  }
  EXPECT_TRUE(added.empty()) << name << " may only shrink, but the walk found:\n" << added;
  EXPECT_TRUE(removed.empty()) << name << " lists what now works; remove:\n" << removed;
}

TEST(OpRegistry, EveryOpWithSamplesPassesEveryCheck) {
  Findings found;
  std::vector<const OpDef*> ops = all_ops();
  ASSERT_GT(ops.size(), 100u);
  for (const OpDef* def : ops) {
    if (!def->samples) {
      found.without_samples.insert(def->name);
      continue;
    }
    int accepted = 0;
    for (const OpSample& sample : def->samples()) {
      for (DType dtype : kDtypes) {
        TensorList inputs;
        for (size_t i = 0; i < sample.inputs.size(); ++i) {
          const bool swept = i < 32 && ((sample.swept >> i) & 1u) != 0;
          inputs.push_back(swept ? in_dtype(sample.inputs[i], dtype) : sample.inputs[i]);
        }
        if (!accepts(*def, inputs, sample.attrs)) continue;
        ++accepted;
        check_call(*def, inputs, sample.attrs, sample.tolerance, found);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    EXPECT_GT(accepted, 0) << def->name << ": its inference accepts none of its samples";
  }
  std::printf(
      "[ walk ] %d calls of %zu ops with samples, %d gradients, %d through ONNX, %d "
      "through lite; %zu ops without samples\n",
      found.calls, ops.size() - found.without_samples.size(), found.gradients, found.exported,
      found.lowered, found.without_samples.size());
  compare_list("ops_without_samples.txt",
               "# Registered ops that declare no samples (OpDef::samples) yet. May only shrink.\n",
               found.without_samples);
  compare_list("not_exported_onnx.txt",
               "# op and dtype of samples the ONNX exporter refuses. May only shrink.\n",
               found.not_exported_onnx);
  compare_list("not_lowered_lite.txt",
               "# Float32 sample calls the lite converter refuses. May only shrink.\n",
               found.not_lowered_lite);
}

}  // namespace
}  // namespace tessera
