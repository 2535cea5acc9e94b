// Per-op overhead of LibTorch's C++ API: 10,000 adds of one-element tensors,
// median over repeats, printed in microseconds per op.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  auto a = torch::ones({1}), b = torch::ones({1});
  std::vector<double> us;
  for (int r = 0; r < 21; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10000; ++i) {
      auto c = a + b;
      (void)c;
    }
    auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / 10000);
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  std::printf("%.4f\n", us[us.size() / 2]);
}
