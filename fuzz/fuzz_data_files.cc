// libFuzzer target for the loaders of user files other than models: checkpoints
// (safetensors), .npy arrays, and the data set readers (IDX as in MNIST, CSV, images through
// stb_image, text lines). The first byte picks the loader; any remaining bytes must load, or
// fail with a tessera::Error. Build and run: bash scripts/fuzz.sh [seconds] data_files
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>

#include "tessera/data/readers.h"
#include "tessera/io/npy.h"
#include "tessera/io/safetensors.h"

namespace {

// The readers take paths: the bytes go to one file per fuzzing process.
const std::string& scratch_path() {
  static const std::string path = "/tmp/tessera_fuzz_data_" + std::to_string(getpid());
  return path;
}

void write_scratch(std::span<const uint8_t> bytes) {
  std::ofstream out(scratch_path(), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Reads every element, so that a tensor claiming more bytes than it holds shows up.
double touch(const tessera::Tensor& t) {
  double total = 0;
  if (t.numel() > 0 && t.numel() < (1 << 22)) {
    for (double v : t.to_vector<double>()) total += v;
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  if (size == 0) return 0;
  const std::span<const uint8_t> bytes(data + 1, size - 1);
  volatile double sink = 0;
  try {
    switch (data[0] % 6) {
      case 0:
        for (const auto& [name, t] : io::parse_safetensors(bytes, "fuzz").tensors) sink = touch(t);
        break;
      case 1:
        sink = touch(io::parse_npy(bytes));
        break;
      case 2:
        write_scratch(bytes);
        sink = touch(data::read_idx(scratch_path()));
        break;
      case 3: {
        write_scratch(bytes);
        data::CsvOptions options;
        options.header = (data[0] / 6) % 2 == 0;
        for (const Tensor& column : data::read_csv(scratch_path(), options).columns) {
          sink = touch(column);
        }
        break;
      }
      case 4: {
        write_scratch(bytes);
        data::ImageFolderOptions options;
        options.channels = (data[0] / 6) % 5;
        options.channels_first = (data[0] / 30) % 2 == 1;
        sink = touch(data::read_image(scratch_path(), options));
        break;
      }
      case 5: {
        write_scratch(bytes);
        auto it = data::text_lines(scratch_path()).node()->make_iterator();
        for (int lines = 0; lines < 1000; ++lines) {
          auto line = it->next();
          if (!line) break;
          sink = touch((*line)[0]);
        }
        break;
      }
    }
  } catch (const Error&) {
  }
  (void)sink;
  return 0;
}
