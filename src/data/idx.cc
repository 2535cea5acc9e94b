// IDX reader (MNIST's format): a big-endian header 00 00 <type> <ndim>, ndim uint32 sizes,
// then the elements, big-endian. The sizes are checked against the bytes present before
// anything is allocated, so a corrupt header cannot ask for gigabytes.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"

namespace tessera::data {
namespace {

constexpr const char* kOp = "read_idx";

std::string hex_byte(unsigned char b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

uint32_t load_be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

struct IdxType {
  DType dtype;       // what the tensor holds
  size_t file_size;  // bytes per element in the file
};

bool idx_type(unsigned code, IdxType* out) {
  switch (code) {
    case 0x08:
      *out = {DType::UInt8, 1};
      return true;
    case 0x09:
      *out = {DType::Int8, 1};
      return true;
    case 0x0B:
      *out = {DType::Int32, 2};
      return true;  // Tessera has no int16
    case 0x0C:
      *out = {DType::Int32, 4};
      return true;
    case 0x0D:
      *out = {DType::Float32, 4};
      return true;
    case 0x0E:
      *out = {DType::Float64, 8};
      return true;
    default:
      return false;
  }
}

Tensor parse_idx(const unsigned char* p, size_t n, const std::string& path) {
  check(n >= 4, kOp, path, ": truncated header at offset 0: expected 4 bytes, found ", n);
  check(p[0] == 0 && p[1] == 0, kOp, path, ": bad magic at offset 0: expected 0x00 0x00, found ",
        hex_byte(p[0]), " ", hex_byte(p[1]), " (not an IDX file?)");
  IdxType type;
  check(idx_type(p[2], &type), kOp, path, ": unknown element type code ", hex_byte(p[2]),
        " at offset 2");
  size_t ndim = p[3];
  check(ndim <= static_cast<size_t>(kMaxDims), kOp, path, ": ", ndim,
        " dimensions at offset 3; tensors have at most ", kMaxDims);
  size_t header = 4 + 4 * ndim;
  check(n >= header, kOp, path, ": truncated header at offset 4: expected ", 4 * ndim,
        " bytes of sizes, found ", n - 4);
  Shape shape;
  size_t available = n - header;
  // Byte count in 128 bits, saturated at 2^64 (so each product fits), so absurd sizes are
  // reported and refused without overflow or allocation.
  constexpr unsigned __int128 kCap = static_cast<unsigned __int128>(1) << 64;
  unsigned __int128 bytes = type.file_size;
  for (size_t d = 0; d < ndim; ++d) {
    uint32_t size = load_be32(p + 4 + 4 * d);
    shape.push_back(size);
    bytes = std::min(bytes * size, kCap);
  }
  bool any_zero = std::find(shape.begin(), shape.end(), 0) != shape.end();
  if (any_zero) bytes = 0;
  if (bytes > std::numeric_limits<uint64_t>::max()) {
    fail(kOp, path, ": truncated data at offset ", header, ": sizes ", shape,
         " need more than 2^64 bytes, found ", available);
  }
  uint64_t count = any_zero ? 0 : static_cast<uint64_t>(bytes) / type.file_size;
  uint64_t expected = static_cast<uint64_t>(bytes);
  check(expected <= available, kOp, path, ": truncated data at offset ", header, ": expected ",
        expected, " bytes, found ", available);
  check(expected == available, kOp, path, ": ", available - expected,
        " unexpected bytes after the data at offset ", header + expected, " (sizes ", shape, ")");

  Tensor t = Tensor::empty(shape, type.dtype);
  const unsigned char* src = p + header;
  int64_t numel = static_cast<int64_t>(count);
  switch (type.file_size) {
    case 1:
      if (numel > 0) std::memcpy(t.data_ptr(), src, numel);
      break;
    case 2: {
      int32_t* dst = t.data<int32_t>();
      for (int64_t i = 0; i < numel; ++i) {
        dst[i] = static_cast<int16_t>(static_cast<uint16_t>(src[2 * i] << 8 | src[2 * i + 1]));
      }
      break;
    }
    case 4: {
      uint32_t* dst = static_cast<uint32_t*>(t.data_ptr());
      for (int64_t i = 0; i < numel; ++i) dst[i] = load_be32(src + 4 * i);
      break;
    }
    case 8: {
      uint64_t* dst = static_cast<uint64_t*>(t.data_ptr());
      for (int64_t i = 0; i < numel; ++i) {
        dst[i] = static_cast<uint64_t>(load_be32(src + 8 * i)) << 32 | load_be32(src + 8 * i + 4);
      }
      break;
    }
  }
  return t;
}

}  // namespace

Tensor read_idx(const std::string& path) {
  std::vector<unsigned char> bytes = detail::read_file_bytes(path, kOp);
  return parse_idx(bytes.data(), bytes.size(), path);
}

TensorList read_idx_pair(const std::string& images_path, const std::string& labels_path,
                         const IdxDatasetOptions& options) {
  Tensor images = read_idx(images_path);
  Tensor labels = read_idx(labels_path);
  check(images.dim() >= 1 && labels.dim() >= 1, "read_idx_pair", "images ", images.shape(),
        " and labels ", labels.shape(), " need a leading count axis");
  check(images.shape()[0] == labels.shape()[0], "read_idx_pair", images_path, " holds ",
        images.shape()[0], " images but ", labels_path, " holds ", labels.shape()[0], " labels");
  if (options.scale_images && images.dtype() == DType::UInt8) {
    Tensor scaled = Tensor::empty(images.shape(), DType::Float32);
    const uint8_t* src = images.data<uint8_t>();
    float* dst = scaled.data<float>();
    for (int64_t i = 0; i < images.numel(); ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
    images = scaled;
  } else if (options.scale_images) {
    images = images.to(DType::Float32);
  }
  if (options.add_channel_axis && images.dim() == 3) images = images.unsqueeze(1).contiguous();
  return {images, labels.to(options.label_dtype)};
}

Dataset idx_dataset(const std::string& images_path, const std::string& labels_path,
                    const IdxDatasetOptions& options) {
  return Dataset::from_tensors(read_idx_pair(images_path, labels_path, options));
}

}  // namespace tessera::data
