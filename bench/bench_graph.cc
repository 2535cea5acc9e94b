// Eager against graph mode on the reference MLP and CNN: batch-1 inference latency and the
// time of one training step (forward, loss, backward, Adam), plus peak resident memory and
// the executor's planned memory against the naive sum. One configuration per process, so
// that peaks stay separate: bench/graph_compare.py runs them all and the peers.
//   bench_graph --model cnn --mode infer|train --runner eager|graph [--threads N] [--iters K]
//               [--inter-op 0|1]   (graph: run independent branches together; default 1)
//               [--profile 1]      (graph training: each node's median time, on stderr;
//                                   the nodes above 1% of the step, every node with
//                                   PROFILE_ALL=1 in the environment)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "tessera/core/parallel.h"
#include "tessera/graph/function.h"
#include "tessera/nn/nn.h"

using namespace tessera;

namespace {

nn::ModulePtr make_model(const std::string& name) {
  auto net = std::make_shared<nn::Sequential>();
  if (name == "cnn") {
    const nn::ConvOptions same_relu{.padding = 1, .activation = "relu"};
    net->add(std::make_shared<nn::Conv2d>(1, 32, 3, same_relu))
        .add(std::make_shared<nn::MaxPool2d>(2))
        .add(std::make_shared<nn::Conv2d>(32, 64, 3, same_relu))
        .add(std::make_shared<nn::MaxPool2d>(2))
        .add(std::make_shared<nn::Flatten>())
        .add(std::make_shared<nn::Linear>(3136, 128))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::Linear>(128, 10));
  } else {
    net->add(std::make_shared<nn::Flatten>())
        .add(std::make_shared<nn::Linear>(784, 256))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::Linear>(256, 256))
        .add(std::make_shared<nn::ReLU>())
        .add(std::make_shared<nn::Linear>(256, 10));
  }
  return net;
}

double peak_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

double median_us(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < std::max(5, iters / 10); ++i) fn();
  std::vector<double> us;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + iters / 2, us.end());
  return us[iters / 2];
}

// Each node's median kernel time, the slowest first, on stderr (the JSON line stays alone
// on stdout).
void print_profile(graph::Executor& exec, const TensorList& inputs, int runs) {
  std::vector<double> us = exec.profile(inputs, runs);
  std::vector<size_t> order(us.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return us[a] > us[b]; });
  double total = 0;
  for (double t : us) total += t;
  std::fprintf(stderr, "profile: %.1f us over %zu nodes\n", total, us.size());
  for (size_t i : order) {
    if (us[i] < (std::getenv("PROFILE_ALL") ? 0.0 : 0.01) * total) break;
    std::fprintf(stderr, "%9.1f us  %5.1f%%  node %zu %s\n", us[i], 100 * us[i] / total, i,
                 exec.graph().nodes[i].op());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "cnn", mode = "infer", runner = "graph";
  int threads = 0, iters = 0, batch = 128;
  bool profile = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    if (k == "--mode") mode = v;
    if (k == "--runner") runner = v;
    if (k == "--threads") threads = std::stoi(v);
    if (k == "--iters") iters = std::stoi(v);
    if (k == "--batch") batch = std::stoi(v);
    if (k == "--inter-op") graph::set_inter_op_parallelism(v != "0");
    if (k == "--profile") profile = v != "0";
  }
  if (threads > 0) set_num_threads(threads);
  manual_seed(0);
  nn::ModulePtr net = make_model(model);
  std::vector<Tensor> params = net->parameters();
  graph::NamedTensorList weights = net->named_parameters();
  double us = 0;
  graph::PlanStats plan;
  if (mode == "infer") {
    net->eval();
    Tensor x = randn({1, 1, 28, 28});
    if (iters == 0) iters = 2000;
    if (runner == "eager") {
      NoGradGuard no_grad;
      us = median_us([&] { net->forward(x); }, iters);
    } else {
      Function f = function([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                            {.signature = {{{-1, 1, 28, 28}}}, .variables = weights});
      us = median_us([&] { f({x}); }, iters);
      plan = f.executor_for({x}).stats({x.shape()});
    }
  } else {
    Tensor x = randn({batch, 1, 28, 28});
    Tensor y = randint(0, 10, {batch}, DType::Int64);
    nn::Adam opt(params, 1e-3);
    auto loss_of = [&](const Tensor& a, const Tensor& b) {
      return nn::cross_entropy(net->forward(a), b);
    };
    if (iters == 0) iters = model == "cnn" ? 40 : 300;
    if (runner == "eager") {
      us = median_us(
          [&] {
            opt.zero_grad();
            loss_of(x, y).backward();
            opt.step();
          },
          iters);
    } else {
      Function step = function(
          [&](const TensorList& in) {
            Tensor loss = loss_of(in[0], in[1]);
            opt.step_with_ops(grad({loss}, params));
            return TensorList{loss};
          },
          {.signature = {{{-1, 1, 28, 28}}, {{-1}, DType::Int64}}, .variables = weights});
      us = median_us([&] { step({x, y}); }, iters);
      plan = step.executor_for({x, y}).stats({x.shape(), y.shape()});
      if (profile) print_profile(step.executor_for({x, y}), {x, y}, iters);
    }
  }
  std::printf(
      "{\"framework\": \"tessera\", \"runner\": \"%s\", \"model\": \"%s\", \"mode\": \"%s\", "
      "\"threads\": %d, \"median_us\": %.1f, \"peak_mib\": %.1f, \"planned_bytes\": %lld, "
      "\"naive_bytes\": %lld, \"waves\": %d, \"concurrent_waves\": %d, \"inter_op\": %d}\n",
      runner.c_str(), model.c_str(), mode.c_str(), num_threads(), us, peak_mib(),
      static_cast<long long>(plan.arena_bytes), static_cast<long long>(plan.naive_bytes),
      plan.waves, plan.concurrent_waves, graph::inter_op_parallelism() ? 1 : 0);
  return 0;
}
