// The safetensors checkpoint format (https://github.com/huggingface/safetensors), readable
// by PyTorch, JAX, NumPy and the Hugging Face tools:
//   8 bytes   little-endian uint64 N
//   N bytes   UTF-8 JSON: {"__metadata__": {"k": "v"},
//                          "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
//             padded with spaces to a multiple of 8 bytes
//   the rest  tensor data, row-major and little-endian; offsets count from its first byte
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsContents {
  NamedTensors tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;
};

// Headers above this size are refused on load, as by the reference implementation.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Writes `tensors`, in the given order and packed back to back, with optional string
// metadata; `path` is replaced atomically (see write_file_atomic). Names must be non-empty,
// unique and not "__metadata__"; names and metadata must be valid UTF-8. Views are written
// as their logical (row-major) contents.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The same file contents, in memory.
std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// Loads every tensor (contiguous, owning its memory) and the metadata. Anything malformed
// is a tessera::Error naming the file and the problem; sizes in the header are checked
// against the file before anything is allocated.
SafetensorsContents load_safetensors(const std::string& path);
// The same from bytes in memory; `name_for_errors` stands for the file in messages.
SafetensorsContents parse_safetensors(std::span<const uint8_t> bytes,
                                      const std::string& name_for_errors);

// "F32", "BF16", "BOOL", ... for a DType, and back (nullopt for names Tessera lacks).
const char* safetensors_dtype_name(DType dtype);
std::optional<DType> dtype_from_safetensors_name(std::string_view name);

}  // namespace tessera::io
