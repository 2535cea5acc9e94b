// tessera-lite-bench MODEL [--runs N] [--warmup N]: load time, arena size, each operator's
// median time and the median latency of a lite model over N runs, inputs filled with
// random values. Links only the lite runtime, as an app on a phone would.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tessera/lite/lite.h"

using namespace tessera::lite;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

void fill_random(void* data, const TensorInfo& info, std::mt19937& rng) {
  if (info.dtype == DType::float32) {
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    auto* p = static_cast<float*>(data);
    for (size_t i = 0; i < info.bytes / 4; ++i) p[i] = u(rng);
  } else {
    auto* p = static_cast<unsigned char*>(data);
    for (size_t i = 0; i < info.bytes; ++i) p[i] = static_cast<unsigned char>(rng());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::printf("usage: tessera-lite-bench MODEL [--runs N] [--warmup N]\n");
    return argc < 2 ? 2 : 0;
  }
  int runs = 200, warmup = 20;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::max(0, std::atoi(argv[i + 1]));
  }
  auto start = Clock::now();
  std::unique_ptr<Model> model;
  Result r = Model::load(argv[1], model);
  double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.message.c_str());
    return 1;
  }
  Interpreter interpreter(*model);
  if (r = interpreter.allocate(); !r.ok()) {
    std::fprintf(stderr, "error: %s\n", r.message.c_str());
    return 1;
  }
  std::mt19937 rng(1);
  for (size_t i = 0; i < interpreter.num_inputs(); ++i) {
    fill_random(interpreter.input_data(i), interpreter.input(i), rng);
  }
  for (int i = 0; i < warmup; ++i) interpreter.invoke();
  std::vector<double> latency;
  std::vector<std::vector<double>> per_op(model->num_operators());
  for (int i = 0; i < runs; ++i) {
    interpreter.set_profiling(i % 2 == 1);  // every other run, so timing calls do not skew
    auto t0 = Clock::now();
    if (r = interpreter.invoke(); !r.ok()) {
      std::fprintf(stderr, "error: %s\n", r.message.c_str());
      return 1;
    }
    double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (i % 2 == 0) {
      latency.push_back(us);
    } else {
      for (size_t k = 0; k < per_op.size(); ++k)
        per_op[k].push_back(1e6 * interpreter.operator_seconds()[k]);
    }
  }
  std::printf("model: %s (version %u, %zu operators)\n", argv[1], model->version(),
              model->num_operators());
  std::printf("load: %.2f ms; arena: %.1f KiB\n", load_ms,
              static_cast<double>(interpreter.arena_bytes()) / 1024);
  std::printf("per operator (median us):\n");
  for (size_t k = 0; k < per_op.size(); ++k) {
    std::printf("  %3zu %-16s %9.1f\n", k, std::string(interpreter.operator_name(k)).c_str(),
                per_op[k].empty() ? 0.0 : median(per_op[k]));
  }
  std::printf("latency: %.1f us median over %zu runs (after %d warm-up runs)\n", median(latency),
              latency.size(), warmup);
  return 0;
}
