// NumPy .npy reading and writing (format versions 1.0 to 3.0).
#include "tessera/io/npy.h"

#include <cstring>
#include <string_view>

#include "bool_bytes.h"
#include "tessera/io/atomic_file.h"
#include "tessera/ops/shape.h"

namespace tessera::io {
namespace {

constexpr const char* kOp = "npy";
constexpr std::string_view kMagic("\x93NUMPY", 6);

struct Descr {
  const char* text;
  DType dtype;
};
constexpr Descr kDescrs[] = {{"|b1", DType::Bool},    {"|i1", DType::Int8},
                             {"|u1", DType::UInt8},   {"<i4", DType::Int32},
                             {"<i8", DType::Int64},   {"<f2", DType::Float16},
                             {"<f4", DType::Float32}, {"<f8", DType::Float64}};

// The text after `key` in the header dict, e.g. "'<f4', 'fortran_order': ...".
std::string_view value_after(std::string_view header, std::string_view key) {
  size_t at = header.find(key);
  check(at != std::string_view::npos, kOp, "header has no ", key, " entry: ", header);
  std::string_view rest = header.substr(at + key.size());
  size_t colon = rest.find(':');
  check(colon != std::string_view::npos, kOp, "malformed header: ", header);
  rest = rest.substr(colon + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return rest;
}

DType parse_descr(std::string_view header) {
  std::string_view v = value_after(header, "'descr'");
  check(v.size() >= 5 && v[0] == '\'', kOp, "malformed descr in header: ", header);
  std::string_view d =
      v.substr(1, v.find('\'', 1) == std::string_view::npos ? 0 : v.find('\'', 1) - 1);
  std::string key(d);
  if (key.size() == 3 && (key[0] == '<' || key[0] == '=') &&
      (key[1] == 'b' || key[1] == 'i' || key[1] == 'u') && key[2] == '1') {
    key[0] = '|';  // NumPy writes one-byte types with '|'; accept '<' and '=' too
  }
  for (const Descr& e : kDescrs) {
    if (key == e.text) return e.dtype;
  }
  fail(kOp, "unsupported dtype '", d, "' (Tessera reads little-endian b1, i1, u1, i4, i8, f2, ",
       "f4, f8)");
}

Dims parse_shape(std::string_view header) {
  std::string_view v = value_after(header, "'shape'");
  check(!v.empty() && v[0] == '(', kOp, "malformed shape in header: ", header);
  size_t close = v.find(')');
  check(close != std::string_view::npos, kOp, "malformed shape in header: ", header);
  std::string_view body = v.substr(1, close - 1);
  Dims shape;
  int64_t numel = 1;
  size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && (body[i] == ' ' || body[i] == ',')) ++i;
    if (i == body.size()) break;
    int64_t d = 0;
    size_t digits = 0;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') {
      check(d < (int64_t{1} << 40), kOp, "dimension too large in header: ", header);
      d = d * 10 + (body[i] - '0');
      ++i, ++digits;
    }
    check(digits > 0, kOp, "malformed shape in header: ", header);
    if (i < body.size() && body[i] == 'L') ++i;  // Python 2 longs
    check(shape.size() < static_cast<size_t>(kMaxDims), kOp, "more than ", kMaxDims,
          " dimensions (Tessera's limit) in header: ", header);
    if (d > 0) check(numel <= (int64_t{1} << 40) / d, kOp, "too many elements: ", header);
    numel *= d;
    shape.push_back(d);
  }
  return shape;
}

bool parse_fortran(std::string_view header) {
  std::string_view v = value_after(header, "'fortran_order'");
  if (v.substr(0, 4) == "True") return true;
  check(v.substr(0, 5) == "False", kOp, "malformed fortran_order in header: ", header);
  return false;
}

const char* descr_of(DType dtype) {
  for (const Descr& e : kDescrs) {
    if (e.dtype == dtype) return e.text;
  }
  fail(kOp, "dtype ", dtype_name(dtype), " has no NumPy equivalent; cast it first");
}

}  // namespace

Tensor parse_npy(std::span<const uint8_t> bytes) {
  std::string_view s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  check(s.size() >= 10 && s.substr(0, 6) == kMagic, kOp, "not a .npy file (bad magic)");
  uint8_t major = bytes[6];
  check(major >= 1 && major <= 3, kOp, "unsupported format version ", int(major));
  size_t header_len, start;
  if (major == 1) {
    header_len = bytes[8] | (size_t{bytes[9]} << 8);
    start = 10;
  } else {
    check(s.size() >= 12, kOp, "truncated header");
    header_len =
        bytes[8] | (size_t{bytes[9]} << 8) | (size_t{bytes[10]} << 16) | (size_t{bytes[11]} << 24);
    start = 12;
  }
  check(header_len <= s.size() - start, kOp, "header length ", header_len, " runs past the end");
  std::string_view header = s.substr(start, header_len);
  DType dtype = parse_descr(header);
  Dims shape = parse_shape(header);
  bool fortran = parse_fortran(header);
  size_t offset = start + header_len;
  uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  check(nbytes <= s.size() - offset, kOp, "data is truncated: header says ", dtype_name(dtype), " ",
        shape, " (", nbytes, " bytes), file has ", s.size() - offset);
  if (!fortran) {
    Tensor t = Tensor::empty(shape, dtype);
    if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + offset, nbytes);
    normalize_bools(t);
    return t;
  }
  // Fortran order is the C order of the reversed shape, transposed.
  Dims reversed;
  for (size_t a = shape.size(); a-- > 0;) reversed.push_back(shape[a]);
  Tensor t = Tensor::empty(reversed, dtype);
  if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + offset, nbytes);
  normalize_bools(t);
  Dims order;
  for (int64_t a = static_cast<int64_t>(shape.size()) - 1; a >= 0; --a) order.push_back(a);
  return permute(t, order).contiguous();
}

Tensor read_npy(const std::string& path) {
  std::string bytes = read_file_bytes(path);
  try {
    return parse_npy({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  } catch (const Error& e) {
    fail(kOp, path, ": ", e.what());
  }
}

std::string npy_bytes(const Tensor& t) {
  std::string header =
      str_cat("{'descr': '", descr_of(t.dtype()), "', 'fortran_order': False, 'shape': (");
  for (int64_t i = 0; i < t.dim(); ++i) header += str_cat(i ? ", " : "", t.shape()[i]);
  header += t.dim() == 1 ? ",)" : ")";
  header += ", }";
  // Pad with spaces so that the data starts on a 64-byte boundary; end with a newline.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  Tensor c = t.contiguous();
  out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  std::string bytes = npy_bytes(t);
  write_file_atomic(path, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

}  // namespace tessera::io
