#include "tessera/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "bool_bytes.h"
#include "posix_file.h"
#include "tessera/core/error.h"
#include "tessera/io/atomic_file.h"

namespace tessera::io {

// Tensor bytes are copied as they are in memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;
constexpr const char* kOp = "safetensors";

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::Bool, "BOOL"},     {DType::UInt8, "U8"},    {DType::Int8, "I8"},
    {DType::Int32, "I32"},     {DType::Int64, "I64"},   {DType::Float16, "F16"},
    {DType::BFloat16, "BF16"}, {DType::Float32, "F32"}, {DType::Float64, "F64"}};

// ---------------------------------------------------------------- writing

// Bytes >= 0x80 as \xNN, so that messages about malformed text are themselves valid text.
std::string escape_high_bytes(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      const char* hex = "0123456789abcdef";
      out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
    }
  }
  return out;
}

// A JSON string literal; invalid UTF-8 is an error rather than a file others cannot read.
std::string json_string(const std::string& s, const std::string& where, const std::string& what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    fail(kOp, where, what, " is not valid UTF-8");
  }
}

void append_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The length field and padded header, plus the contiguous tensors in file order.
struct Prepared {
  std::string prefix;
  std::vector<Tensor> tensors;
  uint64_t data_bytes = 0;
};

Prepared prepare(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                 const std::string& where) {
  Prepared out;
  std::string header = "{";
  // Metadata first and fields in the order dtype, shape, data_offsets: the bytes the
  // reference writer produces for the same tensors in the same order.
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_string(key, where, "metadata key '" + escape_high_bytes(key) + "'");
      header += ':';
      header += json_string(value, where, "the value of metadata key '" + key + "'");
    }
    header += '}';
  }
  std::unordered_set<std::string_view> seen;
  for (const auto& [name, tensor] : tensors) {
    check(!name.empty(), kOp, where, "a tensor has an empty name");
    check(name != "__metadata__", kOp, where, "'__metadata__' is reserved, not a tensor name");
    check(seen.insert(name).second, kOp, where, "duplicate tensor name '", name, "'");
    check(tensor.defined(), kOp, where, "tensor '", name, "' is undefined");
    Tensor t = tensor.detach().contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (header.size() > 1) header += ',';
    header += json_string(name, where, "tensor name '" + escape_high_bytes(name) + "'");
    header += ":{\"dtype\":\"";
    header += safetensors_dtype_name(t.dtype());
    header += "\",\"shape\":[";
    for (size_t i = 0; i < t.shape().size(); ++i) {
      if (i > 0) header += ',';
      header += std::to_string(t.shape()[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(out.data_bytes) + "," +
              std::to_string(out.data_bytes + nbytes) + "]}";
    out.data_bytes += nbytes;
    out.tensors.push_back(std::move(t));
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  out.prefix.reserve(8 + header.size());
  append_le64(out.prefix, header.size());
  out.prefix += header;
  return out;
}

// ---------------------------------------------------------------- reading

// One tensor as the header describes it, before validation.
struct RawEntry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> offsets;
  bool has_dtype = false, has_shape = false, has_offsets = false;
};

// An nlohmann SAX handler that reads the header straight into entries. Unlike building a
// DOM, it stops at the first problem, never nests deeper than the format needs, and
// rejects duplicate keys (a DOM keeps only the last).
class HeaderParser {
 public:
  using string_t = json::string_t;

  std::vector<RawEntry> entries;
  std::map<std::string, std::string> metadata;
  std::string error;  // set when parsing stopped early

  bool null() { return value(Kind::Null); }
  bool boolean(bool) { return value(Kind::Other); }
  bool number_integer(json::number_integer_t v) {
    return v >= 0 ? value(Kind::Unsigned, static_cast<uint64_t>(v)) : value(Kind::Other);
  }
  bool number_unsigned(json::number_unsigned_t v) { return value(Kind::Unsigned, v); }
  bool number_float(json::number_float_t, const string_t&) { return value(Kind::Other); }
  bool string(string_t& s) { return value(Kind::String, 0, &s); }
  bool binary(json::binary_t&) { return value(Kind::Other); }
  bool start_object(std::size_t) { return value(Kind::Object); }
  bool start_array(std::size_t) { return value(Kind::Array); }

  bool key(string_t& k) {
    switch (state_) {
      case State::Top:
        if (!names_.insert(k).second) return stop("duplicate entry '", k, "'");
        key_ = std::move(k);
        state_ = key_ == "__metadata__" ? State::MetadataStart : State::InfoValue;
        return true;
      case State::Metadata:
        if (metadata.count(k)) return stop("duplicate __metadata__ key '", k, "'");
        key_ = std::move(k);
        state_ = State::MetadataValue;
        return true;
      case State::Info:
        if (!info_keys_.insert(k).second) return stop(tensor(), "duplicate key '", k, "'");
        key_ = std::move(k);
        state_ = State::FieldValue;
        return true;
      case State::Skip:
        return true;
      default:
        return stop("unexpected key '", k, "'");  // the JSON grammar rules this out
    }
  }

  bool end_object() {
    switch (state_) {
      case State::Top:
        state_ = State::Done;
        return true;
      case State::Metadata:
        state_ = State::Top;
        return true;
      case State::Info:
        if (!entry_.has_dtype) return stop(tensor(), "no 'dtype'");
        if (!entry_.has_shape) return stop(tensor(), "no 'shape'");
        if (!entry_.has_offsets) return stop(tensor(), "no 'data_offsets'");
        entries.push_back(std::move(entry_));
        state_ = State::Top;
        return true;
      case State::Skip:
        return end_skipped();
      default:
        return stop("unexpected '}'");
    }
  }

  bool end_array() {
    switch (state_) {
      case State::Shape:
        state_ = State::Info;
        return true;
      case State::Offsets:
        if (entry_.offsets.size() != 2) return stop(tensor(), kBadOffsets);
        state_ = State::Info;
        return true;
      case State::Skip:
        return end_skipped();
      default:
        return stop("unexpected ']'");
    }
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    std::string what = e.what();
    size_t bracket = what.find("] ");
    if (what.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
      what = what.substr(bracket + 2);
    }
    // The last token read may hold bytes that are not UTF-8.
    error = "the header is not valid JSON: " + escape_high_bytes(what);
    return false;
  }

 private:
  enum class Kind { Unsigned, String, Object, Array, Null, Other };
  enum class State {
    Root,           // before the top-level object
    Top,            // in the top-level object, expecting a key
    MetadataStart,  // after the "__metadata__" key
    Metadata,       // in __metadata__, expecting a key
    MetadataValue,  // after a key in __metadata__
    InfoValue,      // after a tensor name
    Info,           // in a tensor's object, expecting a key
    FieldValue,     // after a key in a tensor's object
    Shape,          // in "shape": [...]
    Offsets,        // in "data_offsets": [...]
    Skip,           // inside the value of an unknown field
    Done,
  };
  static constexpr const char* kBadShape = "'shape' is not a list of non-negative integers";
  static constexpr const char* kBadOffsets =
      "'data_offsets' is not [begin, end] with non-negative integers";
  static constexpr int kMaxSkipDepth = 16;

  std::string tensor() const { return "tensor '" + entry_.name + "': "; }

  template <typename... Parts>
  bool stop(const Parts&... parts) {
    std::ostringstream os;
    tessera::detail::append_all(os, parts...);
    error = os.str();
    return false;
  }

  bool end_skipped() {
    if (--skip_depth_ == 0) state_ = State::Info;
    return true;
  }

  // A value: a scalar, or the start of an object or array.
  bool value(Kind kind, uint64_t integer = 0, string_t* text = nullptr) {
    switch (state_) {
      case State::Root:
        if (kind != Kind::Object) return stop("the header is not a JSON object");
        state_ = State::Top;
        return true;
      case State::MetadataStart:
        // null is what the reference writer's optional metadata may read as: no metadata.
        if (kind == Kind::Null) {
          state_ = State::Top;
          return true;
        }
        if (kind != Kind::Object) return stop("__metadata__ is not an object of strings");
        state_ = State::Metadata;
        return true;
      case State::MetadataValue:
        if (kind != Kind::String) {
          return stop("__metadata__ value of '", key_, "' is not a string");
        }
        metadata.emplace(std::move(key_), std::move(*text));
        state_ = State::Metadata;
        return true;
      case State::InfoValue:
        if (kind != Kind::Object) return stop("entry '", key_, "' is not an object");
        entry_ = RawEntry{};
        entry_.name = std::move(key_);
        info_keys_.clear();
        state_ = State::Info;
        return true;
      case State::FieldValue:
        return field(kind, text);
      case State::Shape:
        if (kind != Kind::Unsigned) return stop(tensor(), kBadShape);
        if (entry_.shape.size() >= static_cast<size_t>(kMaxDims)) {
          return stop(tensor(), "'shape' has more than ", kMaxDims, " dimensions");
        }
        entry_.shape.push_back(integer);
        return true;
      case State::Offsets:
        if (kind != Kind::Unsigned || entry_.offsets.size() >= 2) {
          return stop(tensor(), kBadOffsets);
        }
        entry_.offsets.push_back(integer);
        return true;
      case State::Skip:
        if ((kind == Kind::Object || kind == Kind::Array) && ++skip_depth_ > kMaxSkipDepth) {
          return stop(tensor(), "field '", key_, "' is nested too deeply");
        }
        return true;
      default:
        return stop("unexpected value");  // the JSON grammar rules this out
    }
  }

  // The value of field key_ of a tensor's object.
  bool field(Kind kind, string_t* text) {
    state_ = State::Info;
    if (key_ == "dtype") {
      if (kind != Kind::String) return stop(tensor(), "'dtype' is not a string");
      entry_.dtype = std::move(*text);
      entry_.has_dtype = true;
    } else if (key_ == "shape") {
      if (kind != Kind::Array) return stop(tensor(), kBadShape);
      entry_.has_shape = true;
      state_ = State::Shape;
    } else if (key_ == "data_offsets") {
      if (kind != Kind::Array) return stop(tensor(), kBadOffsets);
      entry_.has_offsets = true;
      state_ = State::Offsets;
    } else if (kind == Kind::Object || kind == Kind::Array) {
      // Unknown fields are ignored, as by the reference reader.
      skip_depth_ = 1;
      state_ = State::Skip;
    }
    return true;
  }

  State state_ = State::Root;
  std::string key_;
  RawEntry entry_;
  std::unordered_set<std::string> names_;
  std::unordered_set<std::string> info_keys_;
  int skip_depth_ = 0;
};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string quote_file(const std::string& file) { return "'" + file + "': "; }

// Checks the length field against the file size.
void check_header_length(uint64_t n, uint64_t file_size, const std::string& file) {
  check(n <= kSafetensorsMaxHeaderBytes, kOp, quote_file(file), "header length ", n,
        " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes");
  check(n <= file_size - 8, kOp, quote_file(file), "header length ", n, " exceeds the file size (",
        file_size, " bytes, of which 8 are the length)");
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Parses and validates the JSON header for a data buffer of `data_size` bytes.
Header parse_header(std::string_view text, uint64_t data_size, const std::string& file) {
  const std::string where = quote_file(file);
  HeaderParser parser;
  bool ok = false;
  try {
    ok = json::sax_parse(text.data(), text.data() + text.size(), &parser);
  } catch (const json::exception& e) {
    fail(kOp, where, "the header is not valid JSON: ", e.what());
  }
  if (!ok) fail(kOp, where, parser.error.empty() ? "the header is not valid JSON" : parser.error);

  Header header;
  header.metadata = std::move(parser.metadata);
  header.entries.reserve(parser.entries.size());
  for (RawEntry& raw : parser.entries) {
    const std::string at = where + "tensor '" + raw.name + "': ";
    std::optional<DType> dtype = dtype_from_safetensors_name(raw.dtype);
    if (!dtype) {
      fail(kOp, at, "unsupported dtype '", raw.dtype,
           "' (Tessera reads F32 F64 F16 BF16 I8 U8 I32 I64 BOOL)");
    }
    // Every product of dims must fit in int64 (strides included, so zeros count as one).
    uint64_t numel = 1, strides_bound = 1;
    for (uint64_t d : raw.shape) {
      bool overflow =
          d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(strides_bound, std::max<uint64_t>(d, 1), &strides_bound) ||
          strides_bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      check(!overflow, kOp, at, "shape ", shape_string(raw.shape), " is too large");
      numel *= d;  // cannot overflow: bounded by strides_bound or zero
    }
    const size_t item = dtype_size(*dtype);
    uint64_t nbytes = 0;
    check(!__builtin_mul_overflow(numel, uint64_t{item}, &nbytes), kOp, at, "shape ",
          shape_string(raw.shape), " is too large");
    const uint64_t begin = raw.offsets[0], end = raw.offsets[1];
    check(begin <= end, kOp, at, "data_offsets [", begin, ",", end, "] have begin > end");
    check(end - begin == nbytes, kOp, at, "data_offsets [", begin, ",", end, "] hold ", end - begin,
          " bytes, but shape ", shape_string(raw.shape), " of ", raw.dtype, " needs ", nbytes);
    check(end <= data_size, kOp, at, "data_offsets [", begin, ",", end, "] reach past the ",
          data_size, "-byte data buffer");
    Shape shape;
    for (uint64_t d : raw.shape) shape.push_back(static_cast<int64_t>(d));
    header.entries.push_back(Entry{std::move(raw.name), *dtype, shape, begin, end});
  }

  // The format requires the tensors to tile the data buffer exactly.
  std::sort(header.entries.begin(), header.entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : header.entries) {
    if (e.begin < covered) {
      fail(kOp, where, "tensor '", e.name, "' (bytes ", e.begin, " to ", e.end,
           ") overlaps tensor '", previous->name, "' (bytes ", previous->begin, " to ",
           previous->end, ")");
    }
    check(e.begin == covered, kOp, where, "gap in the data buffer: tensor '", e.name,
          "' starts at byte ", e.begin, " but the bytes before end at ", covered);
    covered = e.end;
    previous = &e;
  }
  check(covered == data_size, kOp, where,
        "the data buffer is not fully covered: tensors end at byte ", covered, " of ", data_size);
  return header;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypeNames) {
    if (d.dtype == dtype) return d.name;
  }
  fail(kOp, "unknown dtype code ", static_cast<int>(dtype));
}

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (const DTypeName& d : kDTypeNames) {
    if (name == d.name) return d.dtype;
  }
  return std::nullopt;
}

std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, "");
  std::vector<uint8_t> out(p.prefix.size() + p.data_bytes);
  std::memcpy(out.data(), p.prefix.data(), p.prefix.size());
  size_t at = p.prefix.size();
  for (const Tensor& t : p.tensors) {
    size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    if (n > 0) std::memcpy(out.data() + at, t.data_ptr(), n);
    at += n;
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Validated before the file is touched; then streamed, with no copy of the whole file.
  Prepared p = prepare(tensors, metadata, "save " + quote_file(path));
  write_file_atomic(path, [&](std::ostream& os) {
    os.write(p.prefix.data(), static_cast<std::streamsize>(p.prefix.size()));
    for (const Tensor& t : p.tensors) {
      os.write(static_cast<const char*>(t.data_ptr()),
               static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
  });
}

SafetensorsContents parse_safetensors(std::span<const uint8_t> bytes,
                                      const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  check(bytes.size() >= 8, kOp, quote_file(file), "the file is ", bytes.size(),
        " bytes, shorter than the 8-byte header length");
  const uint64_t n = read_le64(bytes.data());
  check_header_length(n, bytes.size(), file);
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  Header header = parse_header(text, bytes.size() - 8 - n, file);
  const uint8_t* data = bytes.data() + 8 + n;

  SafetensorsContents out;
  out.metadata = std::move(header.metadata);
  out.tensors.reserve(header.entries.size());
  for (Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    normalize_bools(t);
    out.tensors.emplace_back(std::move(e.name), std::move(t));
  }
  return out;
}

SafetensorsContents load_safetensors(const std::string& path) {
  using detail::errno_text;
  detail::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(kOp, "cannot open '", path, "': ", errno_text(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail(kOp, "cannot stat '", path, "': ", errno_text(errno));
  check(S_ISREG(st.st_mode), kOp, quote_file(path), "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  // Reads exactly [offset, offset + n) of the file, or explains why not.
  auto read_at = [&](void* dst, uint64_t n, uint64_t offset) {
    int64_t got = detail::pread_full(fd.get(), dst, n, offset);
    if (got < 0) fail(kOp, "cannot read '", path, "': ", errno_text(errno));
    check(static_cast<uint64_t>(got) == n, kOp, quote_file(path),
          "the file became shorter while being read");
  };

  check(size >= 8, kOp, quote_file(path), "the file is ", size,
        " bytes, shorter than the 8-byte header length");
  uint8_t length[8];
  read_at(length, 8, 0);
  const uint64_t n = read_le64(length);
  check_header_length(n, size, path);
  std::string text(n, '\0');
  read_at(text.data(), n, 8);
  Header header = parse_header(text, size - 8 - n, path);

  // Straight into each tensor's memory: no second copy of the file.
  SafetensorsContents out;
  out.metadata = std::move(header.metadata);
  out.tensors.reserve(header.entries.size());
  for (Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) read_at(t.data_ptr(), e.end - e.begin, 8 + n + e.begin);
    normalize_bools(t);
    out.tensors.emplace_back(std::move(e.name), std::move(t));
  }
  return out;
}

}  // namespace tessera::io
