// ONNX TensorProto reading: every size is checked against the dims before a byte is
// copied, and external data must be a regular file inside the model's folder, reached
// without following a symbolic link.
#include "tensor_proto.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "../file_inside_folder.h"
#include "tessera/io/onnx.h"

namespace tessera::onnx {
namespace {

using ::onnx::TensorProto;

[[noreturn]] void unsupported(const std::string& message) { throw UnsupportedError(message); }

// Copies `count` values from a repeated proto field into the tensor's elements,
// converting each with `convert` (the field holds wider types than the tensor).
template <typename Dst, typename Field, typename Convert>
void copy_field(const Field& field, Tensor& t, const std::string& where, Convert convert) {
  check(static_cast<int64_t>(field.size()) == t.numel(), where, "holds ", field.size(),
        " values for ", t.numel(), " elements of shape ", t.shape());
  Dst* out = static_cast<Dst*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = convert(field.Get(static_cast<int>(i)));
}

// Reads the location, offset and length entries of a tensor's external data.
void external_entries(const TensorProto& proto, std::string& location, int64_t& offset,
                      int64_t& length) {
  offset = 0;
  length = -1;
  for (const auto& entry : proto.external_data()) {
    auto parse = [&](const std::string& text) {
      try {
        size_t used = 0;
        long long v = std::stoll(text, &used);
        check(used == text.size() && v >= 0, "onnx", "tensor '", proto.name(), "': external data ",
              entry.key(), " is not a non-negative integer: ", text);
        return static_cast<int64_t>(v);
      } catch (const std::logic_error&) {
        fail("onnx", "tensor '", proto.name(), "': external data ", entry.key(),
             " is not an integer: ", text);
      }
    };
    if (entry.key() == "location") location = entry.value();
    if (entry.key() == "offset") offset = parse(entry.value());
    if (entry.key() == "length") length = parse(entry.value());
  }
}

// Reads a tensor's external data into `dst` (`bytes` bytes), from a regular file inside the
// model's folder reached without symbolic links (io/file_inside_folder.h).
void read_external(const TensorProto& proto, const std::string& base_dir, int64_t bytes,
                   void* dst) {
  std::string location;
  int64_t offset = 0, length = -1;
  external_entries(proto, location, offset, length);
  check(!location.empty(), "onnx", "tensor '", proto.name(),
        "' has external data without a location");
  check(!base_dir.empty(), "onnx", "tensor '", proto.name(),
        "' has external data, but the model was not read from a file");
  const std::string subject = str_cat("tensor '", proto.name(), "': external data");
  io::detail::FileInsideFolder file =
      io::detail::open_file_inside_folder(base_dir, location, "onnx", subject);
  if (length < 0) length = bytes;
  check(length == bytes, "onnx", subject, " length ", length, " for ", bytes, " bytes of data");
  io::detail::read_file_range(file, offset, length, dst, "onnx", subject);
}

}  // namespace

DType dtype_from_onnx(int onnx_type, const std::string& where) {
  switch (onnx_type) {
    case TensorProto::FLOAT:
      return DType::Float32;
    case TensorProto::DOUBLE:
      return DType::Float64;
    case TensorProto::FLOAT16:
      return DType::Float16;
    case TensorProto::BFLOAT16:
      return DType::BFloat16;
    case TensorProto::INT8:
      return DType::Int8;
    case TensorProto::UINT8:
      return DType::UInt8;
    case TensorProto::INT32:
      return DType::Int32;
    case TensorProto::INT64:
      return DType::Int64;
    case TensorProto::BOOL:
      return DType::Bool;
    default:
      break;
  }
  const char* name =
      TensorProto::DataType_IsValid(onnx_type)
          ? TensorProto::DataType_Name(static_cast<TensorProto::DataType>(onnx_type)).c_str()
          : "an unknown type";
  unsupported(str_cat(where, ": ONNX dtype ", name, " (", onnx_type, ") has no Tessera dtype"));
}

int dtype_to_onnx(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return TensorProto::FLOAT;
    case DType::Float64:
      return TensorProto::DOUBLE;
    case DType::Float16:
      return TensorProto::FLOAT16;
    case DType::BFloat16:
      return TensorProto::BFLOAT16;
    case DType::Int8:
      return TensorProto::INT8;
    case DType::UInt8:
      return TensorProto::UINT8;
    case DType::Int32:
      return TensorProto::INT32;
    case DType::Int64:
      return TensorProto::INT64;
    case DType::Bool:
      return TensorProto::BOOL;
  }
  return TensorProto::UNDEFINED;
}

Tensor tensor_from_proto(const TensorProto& proto, const std::string& base_dir, int64_t max_bytes,
                         int64_t* external_budget) {
  const std::string where = str_cat("tensor '", proto.name(), "'");
  check(proto.has_data_type(), "onnx", where, " has no data type");
  DType dtype = dtype_from_onnx(proto.data_type(), where);
  check(!proto.has_segment(), "onnx", where, " is segmented, which is not supported");
  Dims shape;
  int64_t numel = 1;
  const int64_t limit = max_bytes / static_cast<int64_t>(dtype_size(dtype));
  for (int64_t d : proto.dims()) {
    check(d >= 0, "onnx", where, " has a negative dimension ", d);
    shape.push_back(d);
  }
  // Bound the product of the non-zero dims, so that an empty tensor with huge other dims
  // cannot overflow the strides either.
  int64_t nonzero_product = 1;
  for (int64_t d : shape) {
    if (d == 0) continue;
    check(nonzero_product <= limit / d, "onnx", where, " has dims ", shape, " over the ", max_bytes,
          "-byte limit");
    nonzero_product *= d;
  }
  numel = shape_numel(shape);
  const int64_t bytes = numel * static_cast<int64_t>(dtype_size(dtype));
  if (proto.data_location() == TensorProto::EXTERNAL && external_budget) {
    // Many tensors may name the same bytes of one big file: the model's total is bounded,
    // before anything is allocated.
    check(bytes <= *external_budget, "onnx", where, ": the model's external data passes the ",
          "limit of its total size (ImportOptions::max_external_bytes)");
    *external_budget -= bytes;
  }
  Tensor t = Tensor::empty(shape, dtype);
  if (proto.data_location() == TensorProto::EXTERNAL) {
    read_external(proto, base_dir, bytes, t.data_ptr());
    return t;
  }
  if (proto.has_raw_data()) {
    check(static_cast<int64_t>(proto.raw_data().size()) == bytes, "onnx", where, " has ",
          proto.raw_data().size(), " bytes of raw data for shape ", shape, " of ",
          dtype_name(dtype), " (", bytes, " bytes)");
    if (bytes > 0) std::memcpy(t.data_ptr(), proto.raw_data().data(), static_cast<size_t>(bytes));
    return t;
  }
  switch (dtype) {
    case DType::Float32:
      copy_field<float>(proto.float_data(), t, where, [](float v) { return v; });
      break;
    case DType::Float64:
      copy_field<double>(proto.double_data(), t, where, [](double v) { return v; });
      break;
    case DType::Int64:
      copy_field<int64_t>(proto.int64_data(), t, where, [](int64_t v) { return v; });
      break;
    case DType::Int32:
      copy_field<int32_t>(proto.int32_data(), t, where, [](int32_t v) { return v; });
      break;
    case DType::Int8:
      copy_field<int8_t>(proto.int32_data(), t, where,
                         [](int32_t v) { return static_cast<int8_t>(v); });
      break;
    case DType::UInt8:
      copy_field<uint8_t>(proto.int32_data(), t, where,
                          [](int32_t v) { return static_cast<uint8_t>(v); });
      break;
    case DType::Bool:
      copy_field<bool>(proto.int32_data(), t, where, [](int32_t v) { return v != 0; });
      break;
    case DType::Float16:
    case DType::BFloat16:  // bit patterns in the low 16 bits
      copy_field<uint16_t>(proto.int32_data(), t, where,
                           [](int32_t v) { return static_cast<uint16_t>(v); });
      break;
  }
  return t;
}

std::string read_file_bytes(const std::string& path, int64_t max_bytes) {
  std::error_code ec;
  check(std::filesystem::is_regular_file(path, ec), "onnx", path,
        " is missing or not a regular file");
  auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  check(!ec, "onnx", "cannot read ", path);
  check(size <= max_bytes, "onnx", path, " is ", size, " bytes, over the ", max_bytes,
        "-byte limit");
  std::ifstream in(path, std::ios::binary);
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), size);
  check(in.good() || size == 0, "onnx", "cannot read ", path);
  return data;
}

Tensor read_tensor_file(const std::string& path) {
  constexpr int64_t kLimit = int64_t{1} << 31;
  std::string bytes = read_file_bytes(path, kLimit);
  TensorProto proto;
  check(proto.ParseFromString(bytes), "onnx", path, " is not an ONNX TensorProto");
  std::string dir = std::filesystem::path(path).parent_path().string();
  return tensor_from_proto(proto, dir.empty() ? "." : dir, kLimit);
}

}  // namespace tessera::onnx
