// Committed lite models (the small CNN of the tests, float32 and int8) run by the lite
// runtime alone against the outputs eager mode gave on the committed input. Needs nothing
// but tessera_lite, so the aarch64 cross build runs it under qemu. The files were written
// by test_lite with TESSERA_WRITE_LITE_GOLDEN=tests/lite/golden.
//   test_lite_golden GOLDEN_DIR
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tessera/lite/lite.h"

using namespace tessera::lite;

namespace {

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::vector<float> out(bytes.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// Runs `model` on `input`; compares with `expected` within `tolerance` (absolute, scaled by
// the largest expected value). Returns the number of failures.
int check(const std::string& path, const std::vector<float>& input,
          const std::vector<float>& expected, double tolerance) {
  std::unique_ptr<Model> model;
  Result r = Model::load(path, model);
  if (!r.ok()) return std::printf("FAILED %s: %s\n", path.c_str(), r.message.c_str()), 1;
  Interpreter interpreter(*model);
  if (r = interpreter.allocate(); !r.ok()) {
    return std::printf("FAILED %s: %s\n", path.c_str(), r.message.c_str()), 1;
  }
  if (r = interpreter.set_input(0, input.data(), input.size() * sizeof(float)); !r.ok()) {
    return std::printf("FAILED %s: %s\n", path.c_str(), r.message.c_str()), 1;
  }
  if (r = interpreter.invoke(); !r.ok()) {
    return std::printf("FAILED %s: %s\n", path.c_str(), r.message.c_str()), 1;
  }
  const auto* out = static_cast<const float*>(interpreter.output_data(0));
  if (interpreter.output(0).bytes != expected.size() * sizeof(float)) {
    return std::printf("FAILED %s: %zu output bytes, expected %zu\n", path.c_str(),
                       interpreter.output(0).bytes, expected.size() * sizeof(float)),
           1;
  }
  double top = 0, worst = 0;
  for (float e : expected) top = std::max(top, std::fabs(double(e)));
  for (size_t i = 0; i < expected.size(); ++i) {
    worst = std::max(worst, std::fabs(double(out[i]) - expected[i]));
  }
  bool ok = worst <= tolerance * std::max(top, 1.0);
  std::printf("%s %s: largest error %.3g (allowed %.3g)\n", ok ? "ok" : "FAILED", path.c_str(),
              worst, tolerance * std::max(top, 1.0));
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return std::printf("usage: test_lite_golden GOLDEN_DIR\n"), 2;
  std::string dir = argv[1];
  std::vector<float> input = read_floats(dir + "/input.f32");
  std::vector<float> expected = read_floats(dir + "/expected.f32");
  if (input.empty() || expected.empty()) return std::printf("FAILED: no golden data\n"), 1;
  int failures = check(dir + "/cnn_float32.tlite", input, expected, 1e-5) +
                 check(dir + "/cnn_int8.tlite", input, expected, 0.1);
  return failures ? 1 : 0;
}
