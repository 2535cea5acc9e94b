// The ONNX backend test suite (Debian's libonnx-testdata) run through Tessera's importer:
// each case's model is imported, run with the graph executor on the case's inputs and
// compared with its expected outputs (NumPy's allclose with the suite's rtol 1e-3, atol
// 1e-7). Prints "onnx conformance: P passed, F failed, U unsupported" per category and
// lists the failures; with --expected FILE it exits 1 when a case listed there no longer
// passes (CI's regression check), and --write-expected FILE records today's passes.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "../src/io/onnx/tensor_proto.h"
#include "tessera/graph/executor.h"
#include "tessera/io/onnx.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace fs = std::filesystem;
using namespace tessera;
namespace tonnx = tessera::onnx;

namespace {

enum class Outcome { pass, fail, unsupported };
struct Result {
  Outcome outcome;
  std::string message;
};

// A message on one line, shortened.
std::string one_line(std::string s, size_t limit = 300) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s.size() > limit ? s.substr(0, limit) + "..." : s;
}

std::string compare(const Tensor& got, const Tensor& want, double rtol, double atol) {
  if (got.dtype() != want.dtype()) {
    return str_cat("dtype ", dtype_name(got.dtype()), ", expected ", dtype_name(want.dtype()));
  }
  if (got.shape() != want.shape())
    return str_cat("shape ", got.shape(), ", expected ", want.shape());
  std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  bool exact = !is_floating(want.dtype());
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) && std::isnan(a[i])) continue;
    if (a[i] == b[i]) continue;
    bool close =
        !exact && std::isfinite(b[i]) && std::fabs(a[i] - b[i]) <= atol + rtol * std::fabs(b[i]);
    if (!close) return str_cat("element ", i, " is ", a[i], ", expected ", b[i]);
  }
  return "";
}

std::vector<fs::path> sorted_entries(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  // input_10 after input_9: order by the number after the prefix.
  auto number = [&](const fs::path& p) {
    std::string name = p.stem().string().substr(prefix.size());
    return name.empty() ? 0L : std::atol(name.c_str());
  };
  std::sort(out.begin(), out.end(),
            [&](const auto& x, const auto& y) { return number(x) < number(y); });
  return out;
}

// --perturb: every expected value changed, so that any case with outputs must fail (a check
// that the comparison can fail).
bool perturb = false;
Tensor perturbed(Tensor t) {
  if (t.dtype() == DType::Bool) return logical_not(t);
  if (is_floating(t.dtype())) t = mul(t, scalar_tensor(1.01, t.dtype()));
  return add(t, scalar_tensor(1, t.dtype()));
}

Result run_case(const fs::path& dir) {
  const fs::path model_path = dir / "model.onnx";
  if (!fs::exists(model_path))
    return {Outcome::unsupported, "no model.onnx (the suite downloads it)"};
  ::onnx::ModelProto model;
  {
    std::string bytes = tonnx::read_file_bytes(model_path.string(), int64_t{1} << 31);
    if (!model.ParseFromString(bytes)) return {Outcome::fail, "model.onnx does not parse"};
  }
  std::set<std::string> initializers;
  for (const auto& init : model.graph().initializer()) initializers.insert(init.name());
  std::vector<std::string> input_names;
  for (const auto& in : model.graph().input()) {
    if (initializers.contains(in.name())) continue;
    if (!in.type().has_tensor_type())
      return {Outcome::unsupported, "sequence, map or optional input"};
    input_names.push_back(in.name());
  }
  for (const auto& out : model.graph().output()) {
    if (!out.type().has_tensor_type())
      return {Outcome::unsupported, "sequence, map or optional output"};
  }
  std::vector<fs::path> sets = sorted_entries(dir, "test_data_set_");
  if (sets.empty()) return {Outcome::unsupported, "no test data"};
  for (const fs::path& set : sets) {
    TensorList inputs, expected;
    for (const auto& p : sorted_entries(set, "input_"))
      inputs.push_back(tonnx::read_tensor_file(p.string()));
    for (const auto& p : sorted_entries(set, "output_"))
      expected.push_back(tonnx::read_tensor_file(p.string()));
    if (inputs.size() > input_names.size())
      return {Outcome::fail, "more test inputs than model inputs"};
    tonnx::ImportOptions options;
    for (size_t i = 0; i < inputs.size(); ++i)
      options.input_shapes.emplace_back(input_names[i], inputs[i].shape());
    // Inputs that give shapes or axes must be known at import: fix them as constants.
    std::set<std::string> fixed;
    tonnx::ImportedModel imported;
    for (;;) {
      try {
        imported = tonnx::load(model_path.string(), options);
        break;
      } catch (const tonnx::NeedsValueError& e) {
        std::string name = e.input();
        if (name.empty() || fixed.contains(name)) {
          // Not a direct input: fix them all.
          if (fixed.size() == inputs.size()) throw;
          for (size_t i = 0; i < inputs.size(); ++i) {
            if (fixed.insert(input_names[i]).second)
              options.constant_inputs.emplace_back(input_names[i], inputs[i]);
          }
          continue;
        }
        fixed.insert(name);
        for (size_t i = 0; i < inputs.size(); ++i) {
          if (input_names[i] == name) options.constant_inputs.emplace_back(name, inputs[i]);
        }
      }
    }
    TensorList call_inputs;
    for (const std::string& name : imported.input_names) {
      auto it = std::find(input_names.begin(), input_names.end(), name);
      size_t i = static_cast<size_t>(it - input_names.begin());
      if (i >= inputs.size())
        return {Outcome::fail, str_cat("no test data for input '", name, "'")};
      call_inputs.push_back(inputs[i]);
    }
    graph::Executor executor(std::make_shared<graph::Graph>(std::move(imported.graph)));
    TensorList outputs = executor.run(call_inputs);
    if (outputs.size() < expected.size()) {
      return {Outcome::fail, str_cat(outputs.size(), " outputs, expected ", expected.size())};
    }
    int64_t values = 0;
    for (const Tensor& t : expected) values += t.numel();
    if (perturb && values == 0) return {Outcome::fail, "no values to compare"};
    for (size_t i = 0; i < expected.size(); ++i) {
      if (perturb) expected[i] = perturbed(expected[i]);
      std::string diff = compare(outputs[i], expected[i], 1e-3, 1e-7);
      if (!diff.empty()) {
        return {Outcome::fail, str_cat(set.filename().string(), " output ", i, ": ", diff)};
      }
    }
  }
  return {Outcome::pass, ""};
}

Result run_guarded(const fs::path& dir) {
  try {
    return run_case(dir);
  } catch (const tonnx::UnsupportedError& e) {
    return {Outcome::unsupported, e.what()};
  } catch (const std::exception& e) {
    return {Outcome::fail, e.what()};
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs the ONNX backend test suite through Tessera's ONNX importer"};
  std::string data = "/usr/share/libonnx-testdata/data";
  std::string expected_file, write_expected, filter;
  bool verbose = false;
  app.add_option("--data", data, "the suite's data folder (libonnx-testdata)");
  app.add_option("--expected", expected_file, "cases that must pass (one category/case per line)");
  app.add_option("--write-expected", write_expected, "write the cases that pass to this file");
  app.add_option("--filter", filter, "only cases whose category/name contains this");
  app.add_flag("--verbose", verbose, "also list why each unsupported case is unsupported");
  app.add_flag("--perturb", perturb,
               "change every expected value: checks that the comparison fails every case");
  CLI11_PARSE(app, argc, argv);

  if (!fs::is_directory(data)) {
    std::cout << "onnx conformance: skipped, " << data
              << " is missing (Debian's libonnx-testdata)\n";
    return 0;
  }
  const char* categories[] = {"node", "simple", "pytorch-converted", "pytorch-operator", "real"};
  std::vector<std::string> passes, failures, unsupported;
  std::map<std::string, std::array<int, 3>> counts;
  for (const char* category : categories) {
    fs::path root = fs::path(data) / category;
    if (!fs::is_directory(root)) continue;
    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.is_directory()) cases.push_back(e.path());
    }
    std::sort(cases.begin(), cases.end());
    auto& count = counts[category];
    count = {0, 0, 0};
    for (const fs::path& dir : cases) {
      std::string id = str_cat(category, "/", dir.filename().string());
      if (!filter.empty() && id.find(filter) == std::string::npos) continue;
      Result r = run_guarded(dir);
      switch (r.outcome) {
        case Outcome::pass:
          ++count[0];
          passes.push_back(id);
          break;
        case Outcome::fail:
          ++count[1];
          failures.push_back(str_cat(id, ": ", one_line(r.message)));
          break;
        case Outcome::unsupported:
          ++count[2];
          unsupported.push_back(str_cat(id, ": ", one_line(r.message)));
          break;
      }
    }
  }
  if (verbose) {
    for (const auto& u : unsupported) std::cout << "unsupported " << u << "\n";
  }
  for (const auto& f : failures) std::cout << "FAILED " << f << "\n";
  std::array<int, 3> total{0, 0, 0};
  for (const auto& [category, c] : counts) {
    std::cout << "onnx conformance [" << category << "]: " << c[0] << " passed, " << c[1]
              << " failed, " << c[2] << " unsupported\n";
    for (int i = 0; i < 3; ++i) total[i] += c[i];
  }
  std::cout << "onnx conformance: " << total[0] << " passed, " << total[1] << " failed, "
            << total[2] << " unsupported\n";

  if (perturb && total[0] > 0) {
    std::cout << "onnx conformance: " << total[0] << " cases passed against perturbed outputs:\n";
    for (const auto& p : passes) std::cout << "  " << p << "\n";
    return 1;
  }
  if (!write_expected.empty()) {
    std::ofstream out(write_expected);
    out << "# Cases of the ONNX backend test suite that must pass (tools/onnx_conformance.cc).\n";
    for (const auto& p : passes) out << p << "\n";
  }
  if (!expected_file.empty()) {
    std::ifstream in(expected_file);
    if (!in) {
      std::cerr << "cannot read " << expected_file << "\n";
      return 1;
    }
    std::set<std::string> passed(passes.begin(), passes.end());
    std::string line;
    int regressions = 0, listed = 0;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (!filter.empty() && line.find(filter) == std::string::npos) continue;
      ++listed;
      if (!passed.contains(line)) {
        std::cout << "REGRESSION " << line << " passed before and does not now\n";
        ++regressions;
      }
    }
    std::cout << "onnx conformance: " << listed - regressions << " of " << listed
              << " expected passes pass; " << passes.size() - (listed - regressions)
              << " new passes\n";
    if (regressions > 0) return 1;
  }
  return 0;
}
