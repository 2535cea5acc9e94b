// text_lines: a file read lazily line by line; each line is a uint8 tensor of its bytes.
#include <cerrno>
#include <cstring>
#include <fstream>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"

namespace tessera::data {

std::string bytes_to_string(const Tensor& bytes) {
  check(bytes.dtype() == DType::UInt8 && bytes.dim() == 1, "bytes_to_string",
        "expected a 1-d uint8 tensor, got ", bytes.shape(), " ", dtype_name(bytes.dtype()));
  Tensor c = bytes.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()));
}

Tensor string_to_bytes(std::string_view text) {
  Tensor t = Tensor::empty({static_cast<int64_t>(text.size())}, DType::UInt8);
  if (!text.empty()) std::memcpy(t.data_ptr(), text.data(), text.size());
  return t;
}

Dataset text_lines(const std::string& path) {
  {
    std::ifstream probe(path, std::ios::binary);
    check(probe.good(), "text_lines", path, ": cannot open: ", std::strerror(errno));
  }
  return Dataset::from_generator([path]() -> std::unique_ptr<Iterator> {
    struct It final : Iterator {
      std::ifstream in;
      std::string line;
      std::optional<Example> next() override {
        if (!std::getline(in, line)) {
          check(!in.bad(), "text_lines", "read error");
          return std::nullopt;
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Example{string_to_bytes(line)};
      }
    };
    auto it = std::make_unique<It>();
    it->in.open(path, std::ios::binary);
    check(it->in.good(), "text_lines", path, ": cannot open: ", std::strerror(errno));
    return it;
  });
}

}  // namespace tessera::data
