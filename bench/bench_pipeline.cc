// The Fashion-MNIST input pipeline alone, as the main job runs it (images kept as bytes ->
// shuffle -> batch(128) -> standardized float32 through a byte table -> prefetch(2)):
// batches per second over full epochs, to compare with the rate at which training consumes
// them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tessera/data/augment.h"
#include "tessera/data/readers.h"

int main(int argc, char** argv) {
  using namespace tessera;
  std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  TensorList pair =
      data::read_idx_pair(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz",
                          {.scale_images = false});
  const data::ByteTable table = data::byte_table(0.2860, 0.3530);
  data::Dataset batches = data::Dataset::from_tensors(pair)
                              .shuffle(60000, 42)
                              .batch(128)
                              .map([&table](data::Example b) {
                                b[0] = data::bytes_to_float(b[0], table);
                                return b;
                              })
                              .prefetch(2);
  std::vector<double> rates;
  for (int epoch = 0; epoch < 11; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    int64_t count = 0;
    auto it = batches.iterator();
    while (auto b = it->next()) ++count;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(count) / s);
  }
  std::sort(rates.begin(), rates.end());
  double median = rates[rates.size() / 2];
  std::printf("pipeline: %.0f batches/s (%.0f images/s), median of %zu epochs\n", median,
              median * 128, rates.size());
  return 0;
}
