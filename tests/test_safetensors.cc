// io/: atomic file replacement and the safetensors format (round trips, the exact bytes,
// every validation error, atomicity on failure, and a mutation fuzz of the parser).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "tessera/io/atomic_file.h"
#include "tessera/io/safetensors.h"
#include "test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using io::NamedTensors;
using io::SafetensorsContents;
using testing::expect_error;

constexpr DType kAllDTypes[] = {DType::Bool,     DType::UInt8,   DType::Int8,
                                DType::Int32,    DType::Int64,   DType::Float16,
                                DType::BFloat16, DType::Float32, DType::Float64};

std::vector<uint8_t> to_bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::string le64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

uint64_t read_le64(const std::vector<uint8_t>& f) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | f[i];
  return v;
}

// A file with the given (unpadded) header and data bytes.
std::vector<uint8_t> make_file(const std::string& header, const std::string& data = "") {
  return to_bytes(le64(header.size()) + header + data);
}

// The logical contents of a tensor as bytes (row-major).
std::string raw_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()),
                     static_cast<size_t>(c.numel()) * c.element_size());
}

// Random bit patterns (NaN payloads, infinities and denormals included); bools are 0/1.
Tensor random_bits(const Shape& shape, DType dtype, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  std::mt19937_64 rng(seed);
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  for (size_t i = 0; i < n; ++i) p[i] = dtype == DType::Bool ? rng() & 1 : rng() & 0xff;
  return t;
}

void expect_same_tensors(const NamedTensors& actual, const NamedTensors& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const auto& [name, t] = actual[i];
    SCOPED_TRACE(expected[i].first);
    EXPECT_EQ(name, expected[i].first);
    EXPECT_EQ(t.dtype(), expected[i].second.dtype());
    EXPECT_EQ(t.shape(), expected[i].second.shape());
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_EQ(raw_bytes(t), raw_bytes(expected[i].second));
  }
}

// Each test gets a fresh directory, removed afterwards.
class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tessera_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

// ---------------------------------------------------------------- round trips

TEST(Safetensors, DTypeNames) {
  const char* names[] = {"BOOL", "U8", "I8", "I32", "I64", "F16", "BF16", "F32", "F64"};
  for (int i = 0; i < kNumDTypes; ++i) {
    EXPECT_STREQ(io::safetensors_dtype_name(kAllDTypes[i]), names[i]);
    EXPECT_EQ(io::dtype_from_safetensors_name(names[i]), kAllDTypes[i]);
  }
  EXPECT_FALSE(io::dtype_from_safetensors_name("I16").has_value());
  EXPECT_FALSE(io::dtype_from_safetensors_name("f32").has_value());
}

TEST_F(IoTest, RoundTripEveryDTypeAndLayout) {
  NamedTensors tensors;
  uint64_t seed = 1;
  for (DType d : kAllDTypes) {
    const std::string p = io::safetensors_dtype_name(d);
    tensors.emplace_back(p + ".full", random_bits({2, 3}, d, seed++));
    tensors.emplace_back(p + ".scalar", random_bits({}, d, seed++));
    tensors.emplace_back(p + ".empty", random_bits({0, 3}, d, seed++));
    tensors.emplace_back(p + ".transposed", random_bits({3, 4}, d, seed++).t());
    tensors.emplace_back(p + ".strided",
                         random_bits({6, 5}, d, seed++).slice(0, 1, 6, 2).slice(1, 0, 5, 2));
    tensors.emplace_back(p + ".expanded", random_bits({1, 3}, d, seed++).expand({4, 3}));
  }
  ASSERT_FALSE(tensors[3].second.is_contiguous());

  SafetensorsContents in_memory = io::parse_safetensors(io::serialize_safetensors(tensors), "mem");
  expect_same_tensors(in_memory.tensors, tensors);
  EXPECT_TRUE(in_memory.metadata.empty());

  io::save_safetensors(path("all.safetensors"), tensors);
  SafetensorsContents loaded = io::load_safetensors(path("all.safetensors"));
  expect_same_tensors(loaded.tensors, tensors);
  EXPECT_EQ(listing(), std::vector<std::string>{"all.safetensors"});
  // The file on disk is exactly what serialize gives.
  std::vector<uint8_t> serialized = io::serialize_safetensors(tensors);
  EXPECT_EQ(io::read_file_bytes(path("all.safetensors")),
            std::string(serialized.begin(), serialized.end()));
}

TEST_F(IoTest, LargeTensorRoundTrip) {
  NamedTensors tensors = {{"small", random_bits({3}, DType::UInt8, 1)},
                          {"big", random_bits({1 << 20}, DType::Float32, 2)},
                          {"tail", random_bits({5}, DType::Float64, 3)}};
  io::save_safetensors(path("big.safetensors"), tensors);
  expect_same_tensors(io::load_safetensors(path("big.safetensors")).tensors, tensors);
}

TEST_F(IoTest, MetadataRoundTrip) {
  std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                 {"quote\"and\\back", "line\nbreak\ttab\x01"},
                                                 {"unicode", "h\xc3\xa9llo \xe2\x9c\x93"},
                                                 {"empty", ""}};
  NamedTensors tensors = {{"w", random_bits({2}, DType::Float32, 5)}};
  EXPECT_EQ(io::parse_safetensors(io::serialize_safetensors(tensors, metadata), "m").metadata,
            metadata);
  io::save_safetensors(path("m.safetensors"), tensors, metadata);
  SafetensorsContents loaded = io::load_safetensors(path("m.safetensors"));
  EXPECT_EQ(loaded.metadata, metadata);
  expect_same_tensors(loaded.tensors, tensors);
  // Metadata alone, no tensors.
  SafetensorsContents only = io::parse_safetensors(io::serialize_safetensors({}, metadata), "m");
  EXPECT_TRUE(only.tensors.empty());
  EXPECT_EQ(only.metadata, metadata);
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
  for (int len = 1; len <= 17; ++len) {
    NamedTensors tensors = {{std::string(len, 'x'), random_bits({3}, DType::Int8, 1)}};
    std::vector<uint8_t> f =
        io::serialize_safetensors(tensors, len % 2 ? std::map<std::string, std::string>{{"k", "v"}}
                                                   : std::map<std::string, std::string>{});
    uint64_t n = read_le64(f);
    EXPECT_EQ(n % 8, 0u) << len;
    EXPECT_EQ(f.size(), 8 + n + 3) << len;
    std::string header(f.begin() + 8, f.begin() + 8 + n);
    size_t last = header.find_last_not_of(' ');
    EXPECT_EQ(header[last], '}');
    EXPECT_LT(n - 1 - last, 8u);  // padding is under 8 spaces
    EXPECT_EQ(std::string(f.end() - 3, f.end()), raw_bytes(tensors[0].second));
  }
}

// ---------------------------------------------------------------- the exact bytes

TEST(Safetensors, ByteExactSingleTensor) {
  NamedTensors tensors = {{"a", from_vector<float>({1.0f, -2.0f})}};
  std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) +
                         R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})" + "  " +
                         std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  std::vector<uint8_t> f = io::serialize_safetensors(tensors);
  EXPECT_EQ(std::string(f.begin(), f.end()), expected);
}

TEST(Safetensors, ByteExactMetadataAndMixedDTypes) {
  NamedTensors tensors = {{"w", from_vector<bfloat16>({bfloat16(1.0f)})},
                          {"b", from_vector<uint8_t>({1, 0, 1}).to(DType::Bool)},
                          {"i", scalar_tensor(-2, DType::Int64)}};
  std::string expected = std::string("\xc8\0\0\0\0\0\0\0", 8) +
                         R"({"__metadata__":{"format":"pt"},)"
                         R"("w":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},)"
                         R"("b":{"dtype":"BOOL","shape":[3],"data_offsets":[2,5]},)"
                         R"("i":{"dtype":"I64","shape":[],"data_offsets":[5,13]}})" +
                         std::string(7, ' ') +
                         std::string("\x80\x3f\x01\x00\x01\xfe\xff\xff\xff\xff\xff\xff\xff", 13);
  std::vector<uint8_t> f = io::serialize_safetensors(tensors, {{"format", "pt"}});
  EXPECT_EQ(std::string(f.begin(), f.end()), expected);
}

// Files from other writers: no padding, entries in any order, extra fields, null metadata.
TEST(Safetensors, ReadsOtherWritersFiles) {
  std::string data("\x01\0\0\0\x02\0\0\0\x03\0\0\0\x04\0\0\0", 16);
  auto f = make_file(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", data);
  ASSERT_EQ(f[0], 60);  // the header is not a multiple of 8
  SafetensorsContents c = io::parse_safetensors(f, "plain");
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].first, "test");
  EXPECT_EQ(c.tensors[0].second.shape(), Shape({2, 2}));
  EXPECT_EQ(c.tensors[0].second.to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4}));

  // Listed out of data order, with unknown fields and null metadata: sorted by offset.
  auto g = make_file(
      R"({"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":null,)"
      R"("a":{"note":{"x":[1,{"y":null}]},"dtype":"U8","shape":[2],"data_offsets":[1,3],"v":2}})",
      "\x07\x08\x09");
  SafetensorsContents d = io::parse_safetensors(g, "unordered");
  ASSERT_EQ(d.tensors.size(), 2u);
  EXPECT_EQ(d.tensors[0].first, "z");
  EXPECT_EQ(d.tensors[1].first, "a");
  EXPECT_EQ(d.tensors[1].second.to_vector<uint8_t>(), (std::vector<uint8_t>{8, 9}));
  EXPECT_TRUE(d.metadata.empty());
}

// Bytes other than 0/1 in a BOOL tensor are accepted and read as true.
TEST(Safetensors, BoolBytesAreNormalized) {
  auto f = make_file(R"({"m":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}})",
                     std::string("\x00\x01\x02\xff", 4));
  Tensor m = io::parse_safetensors(f, "bools").tensors.at(0).second;
  EXPECT_EQ(raw_bytes(m), std::string("\x00\x01\x01\x01", 4));
}

// ---------------------------------------------------------------- validation

void expect_parse_error(const std::vector<uint8_t>& file, const std::string& fragment) {
  SCOPED_TRACE(fragment);
  expect_error([&] { io::parse_safetensors(file, "bad.safetensors"); }, fragment);
  expect_error([&] { io::parse_safetensors(file, "bad.safetensors"); }, "'bad.safetensors'");
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

// A JSON object of the given "key":value members.
std::string object(std::initializer_list<std::string> members) {
  std::string s = "{";
  for (const std::string& m : members) {
    if (s.size() > 1) s += ',';
    s += m;
  }
  s += '}';
  return s;
}

TEST(SafetensorsValidation, FramingErrors) {
  expect_parse_error(to_bytes(std::string("\x01\x02\x03", 3)),
                     "3 bytes, shorter than the 8-byte header length");
  expect_parse_error({}, "0 bytes, shorter than the 8-byte header length");
  expect_parse_error(to_bytes(le64(1000) + "{}"), "header length 1000 exceeds the file size");
  expect_parse_error(to_bytes(le64(9) + "{}      "), "header length 9 exceeds the file size");
  expect_parse_error(to_bytes(le64(200'000'000) + "{}"), "exceeds the limit of 100000000 bytes");
  expect_parse_error(to_bytes(le64(~uint64_t{0}) + "{}"), "exceeds the limit");
}

TEST(SafetensorsValidation, JsonErrors) {
  expect_parse_error(make_file(R"({"a":)"), "the header is not valid JSON");
  expect_parse_error(make_file(""), "the header is not valid JSON");
  expect_parse_error(make_file("{}x"), "the header is not valid JSON");
  expect_parse_error(make_file("{\"\xff\":1}"), "the header is not valid JSON");
  expect_parse_error(make_file("{\"\xff\":1}"), "ill-formed UTF-8 byte; last read: '\"\\xff'");
  expect_parse_error(make_file("[1,2]"), "the header is not a JSON object");
  expect_parse_error(make_file("3"), "the header is not a JSON object");
  expect_parse_error(make_file(std::string(100000, '[') + std::string(100000, ']')),
                     "the header is not a JSON object");
  expect_parse_error(make_file(R"({"a":5})"), "entry 'a' is not an object");
  expect_parse_error(make_file(object({entry("a", "\"U8\"", "[1]", "[0,1]"),
                                       entry("a", "\"U8\"", "[1]", "[1,2]")}),
                               "xy"),
                     "duplicate entry 'a'");
  expect_parse_error(
      make_file(R"({"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x"),
      "tensor 'a': duplicate key 'dtype'");
  expect_parse_error(make_file(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"),
                     "tensor 'a': no 'dtype'");
  expect_parse_error(make_file(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"),
                     "tensor 'a': no 'shape'");
  expect_parse_error(make_file(R"({"a":{"dtype":"U8","shape":[1]}})", "x"),
                     "tensor 'a': no 'data_offsets'");
  std::string deep = std::string(40, '[') + std::string(40, ']');
  expect_parse_error(
      make_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":)" + deep + "}}", "x"),
      "field 'x' is nested too deeply");
}

TEST(SafetensorsValidation, MetadataErrors) {
  expect_parse_error(make_file(R"({"__metadata__":{"k":1}})"),
                     "__metadata__ value of 'k' is not a string");
  expect_parse_error(make_file(R"({"__metadata__":{"k":{"x":"y"}}})"),
                     "__metadata__ value of 'k' is not a string");
  expect_parse_error(make_file(R"({"__metadata__":["k"]})"),
                     "__metadata__ is not an object of strings");
  expect_parse_error(make_file(R"({"__metadata__":{"k":"a","k":"b"}})"),
                     "duplicate __metadata__ key 'k'");
  expect_parse_error(make_file(R"({"__metadata__":{},"__metadata__":{}})"),
                     "duplicate entry '__metadata__'");
}

TEST(SafetensorsValidation, DTypeAndShapeErrors) {
  auto one = [](const std::string& dtype, const std::string& shape, const std::string& offsets,
                const std::string& data = "") {
    return make_file(object({entry("t", dtype, shape, offsets)}), data);
  };
  expect_parse_error(one("\"F8_E4M3\"", "[1]", "[0,1]", "x"),
                     "tensor 't': unsupported dtype 'F8_E4M3'");
  expect_parse_error(one("\"I16\"", "[1]", "[0,2]", "xx"), "unsupported dtype 'I16'");
  expect_parse_error(one("5", "[1]", "[0,1]", "x"), "tensor 't': 'dtype' is not a string");
  const std::string bad_shape = "tensor 't': 'shape' is not a list of non-negative integers";
  expect_parse_error(one("\"U8\"", "\"abc\"", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[-1]", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[1.5]", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[1,\"2\"]", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[[1]]", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[18446744073709551616]", "[0,1]", "x"), bad_shape);
  expect_parse_error(one("\"U8\"", "[1,1,1,1,1,1,1,1,1,1,1,1,1]", "[0,1]", "x"),
                     "'shape' has more than 12 dimensions");
  expect_parse_error(one("\"F32\"", "[4294967296,4294967296,4]", "[0,4]", "xxxx"),
                     "shape [4294967296,4294967296,4] is too large");
  expect_parse_error(one("\"U8\"", "[9223372036854775808]", "[0,1]", "x"), "is too large");
  expect_parse_error(one("\"U8\"", "[0,4294967296,4294967296]", "[0,0]"), "is too large");
  expect_parse_error(one("\"F64\"", "[4611686018427387904]", "[0,8]", "xxxxxxxx"), "is too large");
}

TEST(SafetensorsValidation, OffsetErrors) {
  auto one = [](const std::string& offsets, const std::string& data) {
    return make_file(object({entry("t", "\"F32\"", "[2]", offsets)}), data);
  };
  const std::string bad =
      "tensor 't': 'data_offsets' is not [begin, end] with non-negative integers";
  const std::string eight(8, 'x');
  expect_parse_error(one("[0]", eight), bad);
  expect_parse_error(one("[0,8,8]", eight), bad);
  expect_parse_error(one("[-1,8]", eight), bad);
  expect_parse_error(one("\"0,8\"", eight), bad);
  expect_parse_error(one("[0,8.0]", eight), bad);
  expect_parse_error(one("[8,0]", eight), "tensor 't': data_offsets [8,0] have begin > end");
  expect_parse_error(one("[0,4]", eight),
                     "data_offsets [0,4] hold 4 bytes, but shape [2] of F32 needs 8");
  expect_parse_error(one("[4,12]", eight), "data_offsets [4,12] reach past the 8-byte data buffer");
  expect_parse_error(one("[18446744073709551608,18446744073709551615]", eight), "hold 7 bytes");

  auto two = [](const std::string& a, const std::string& b, size_t data) {
    return make_file(object({entry("a", "\"F32\"", "[1]", a), entry("b", "\"F32\"", "[1]", b)}),
                     std::string(data, 'x'));
  };
  expect_parse_error(two("[0,4]", "[2,6]", 8),
                     "tensor 'b' (bytes 2 to 6) overlaps tensor 'a' (bytes 0 to 4)");
  expect_parse_error(two("[0,4]", "[0,4]", 8), "overlaps");
  expect_parse_error(
      two("[0,4]", "[8,12]", 12),
      "gap in the data buffer: tensor 'b' starts at byte 8 but the bytes before end at 4");
  expect_parse_error(two("[4,8]", "[8,12]", 12), "tensor 'a' starts at byte 4");
  expect_parse_error(two("[0,4]", "[4,8]", 12),
                     "the data buffer is not fully covered: tensors end at byte 8 of 12");
  expect_parse_error(make_file("{}", "abcd"), "not fully covered: tensors end at byte 0 of 4");
}

TEST_F(IoTest, SaveErrors) {
  Tensor t = zeros({2});
  const std::string p = path("s.safetensors");
  io::write_file_atomic(p, std::span<const uint8_t>(to_bytes("previous")));
  expect_error([&] { io::save_safetensors(p, {{"a", t}, {"a", t}}); }, "duplicate tensor name 'a'");
  expect_error([&] { io::save_safetensors(p, {{"a", t}, {"a", t}}); }, "save '" + p + "'");
  expect_error([&] { io::save_safetensors(p, {{"", t}}); }, "a tensor has an empty name");
  expect_error(
      [&] {
        io::save_safetensors(p, {{"__metadata__", t}});
      },
      "'__metadata__' is reserved");
  expect_error([&] { io::save_safetensors(p, {{"u", Tensor()}}); }, "tensor 'u' is undefined");
  expect_error(
      [&] {
        io::save_safetensors(p, {{"bad\xff", t}});
      },
      "tensor name 'bad\\xff' is not valid UTF-8");
  expect_error(
      [&] {
        io::save_safetensors(p, {{"a", t}}, {{"\xc3", "v"}});
      },
      "metadata key '\\xc3' is not valid UTF-8");
  expect_error(
      [&] {
        io::save_safetensors(p, {{"a", t}}, {{"k", "\xc3"}});
      },
      "the value of metadata key 'k' is not valid UTF-8");
  expect_error(
      [&] {
        io::serialize_safetensors({{"a", t}, {"a", t}});
      },
      "duplicate tensor name 'a'");
  // Nothing was written.
  EXPECT_EQ(io::read_file_bytes(p), "previous");
  EXPECT_EQ(listing(), std::vector<std::string>{"s.safetensors"});
}

TEST_F(IoTest, LoadErrors) {
  expect_error([&] { io::load_safetensors(path("missing")); }, "No such file or directory");
  expect_error([&] { io::load_safetensors(path("missing")); }, "cannot open '" + path("missing"));
  expect_error([&] { io::load_safetensors(dir_.string()); }, "not a regular file");
  io::write_file_atomic(path("short"), std::span<const uint8_t>(to_bytes("abc")));
  expect_error([&] { io::load_safetensors(path("short")); },
               std::string("'") + path("short") +
                   "': the file is 3 bytes, shorter than the 8-byte header length");
  // A valid file cut short in its data.
  std::vector<uint8_t> f = io::serialize_safetensors({{"w", zeros({4})}});
  f.resize(f.size() - 1);
  io::write_file_atomic(path("cut"), std::span<const uint8_t>(f));
  expect_error([&] { io::load_safetensors(path("cut")); }, "reach past the 15-byte data buffer");
  std::vector<uint8_t> g = make_file(std::string(R"({"a":{"dtype":"U8")"));
  io::write_file_atomic(path("json"), std::span<const uint8_t>(g));
  expect_error([&] { io::load_safetensors(path("json")); }, "the header is not valid JSON");
}

// ---------------------------------------------------------------- atomic writes

TEST_F(IoTest, AtomicWriteReplacesWholeFile) {
  const std::string p = path("file");
  io::write_file_atomic(p, [](std::ostream& os) { os << "old contents"; });
  EXPECT_EQ(io::read_file_bytes(p), "old contents");
  ::chmod(p.c_str(), 0640);
  std::string big(300000, 'z');
  io::write_file_atomic(p, std::span<const uint8_t>(to_bytes(big)));
  EXPECT_EQ(io::read_file_bytes(p), big);
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(listing(), std::vector<std::string>{"file"});
  io::write_file_atomic(p, std::span<const uint8_t>());
  EXPECT_EQ(io::read_file_bytes(p), "");
}

TEST_F(IoTest, FailedWriteLeavesOldFileAndNoTemp) {
  const std::string p = path("file");
  io::write_file_atomic(p, [](std::ostream& os) { os << "old contents"; });
  auto half_then = [](auto thrower) {
    return [thrower](std::ostream& os) {
      os << std::string(100000, 'n');  // some of it reaches the temp file
      thrower();
      os << "never";
    };
  };
  expect_error(
      [&] { io::write_file_atomic(p, half_then([] { throw std::runtime_error("boom"); })); },
      "writing '" + p + "' failed, the previous file is unchanged: boom");
  expect_error([&] { io::write_file_atomic(p, half_then([] { throw 42; })); }, "unknown exception");
  expect_error([&] { io::write_file_atomic(p, half_then([] { fail("inner", "bad value"); })); },
               "inner: bad value");
  expect_error(
      [&] { io::write_file_atomic(p, [](std::ostream& os) { os.setstate(std::ios::failbit); }); },
      "failed state");
  EXPECT_EQ(io::read_file_bytes(p), "old contents");
  EXPECT_EQ(listing(), std::vector<std::string>{"file"});
}

TEST_F(IoTest, WriteErrorsNameThePath) {
  const std::string p = path("no/such/dir/file");
  expect_error([&] { io::write_file_atomic(p, [](std::ostream& os) { os << "x"; }); },
               "cannot write '" + p + "'");
  expect_error([&] { io::write_file_atomic(p, [](std::ostream& os) { os << "x"; }); },
               "No such file or directory");
  expect_error([&] { io::save_safetensors(p, {{"a", zeros({1})}}); }, "No such file or directory");
  expect_error([&] { io::write_file_atomic("", std::span<const uint8_t>()); }, "the path is empty");
  // The target is a directory: rename fails, the temp file is removed.
  fs::create_directory(path("adir"));
  expect_error([&] { io::write_file_atomic(path("adir"), std::span<const uint8_t>()); },
               "cannot replace '" + path("adir") + "'");
  EXPECT_EQ(listing(), std::vector<std::string>{"adir"});
  expect_error([&] { io::read_file_bytes(path("missing")); },
               "read_file_bytes: cannot open '" + path("missing") + "': No such file or directory");
  expect_error([&] { io::read_file_bytes(path("adir")); }, "it is a directory");
}

TEST_F(IoTest, ConcurrentWritersUseDistinctTempFiles) {
  const std::string p = path("file");
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 20; ++i) {
        io::write_file_atomic(p, [&](std::ostream& os) { os << std::string(5000, 'a' + k); });
      }
    });
  }
  for (auto& t : threads) t.join();
  std::string got = io::read_file_bytes(p);
  EXPECT_TRUE(got == std::string(5000, 'a') || got == std::string(5000, 'b'));
  EXPECT_EQ(listing(), std::vector<std::string>{"file"});
}

// ---------------------------------------------------------------- fuzz

TEST(SafetensorsFuzz, MutatedFilesParseOrThrowError) {
  NamedTensors tensors = {{"weight", random_bits({3, 4}, DType::Float32, 1)},
                          {"bias", random_bits({4}, DType::Float16, 2)},
                          {"mask", random_bits({5}, DType::Bool, 3)},
                          {"step", scalar_tensor(7, DType::Int64)},
                          {"none", zeros({0, 2}, DType::BFloat16)}};
  const std::vector<uint8_t> base =
      io::serialize_safetensors(tensors, {{"format", "pt"}, {"epoch", "3"}});
  const std::string tokens[] = {"{",
                                "}",
                                "[",
                                "]",
                                "\"",
                                ":",
                                ",",
                                "0",
                                "1",
                                "-1",
                                "1e3",
                                "0.5",
                                "null",
                                "true",
                                " ",
                                "\\",
                                "\xff",
                                "\xc3",
                                "[0,0]",
                                "[]",
                                "{}",
                                "\"F32\"",
                                "\"BOOL\"",
                                "\"I16\"",
                                "\"__metadata__\"",
                                "\"dtype\"",
                                "\"shape\"",
                                "\"data_offsets\"",
                                "18446744073709551615",
                                "18446744073709551616",
                                "9223372036854775807",
                                "4294967296",
                                "[[[[[[[[",
                                "]]]]]]]]"};
  std::mt19937_64 rng(20240607);
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  auto set_length = [](std::vector<uint8_t>& f, uint64_t v) {
    for (int i = 0; i < 8 && i < static_cast<int>(f.size()); ++i) f[i] = (v >> (8 * i)) & 0xff;
  };

  int parsed = 0, rejected = 0;
  const int kIterations = 4000;
  for (int iter = 0; iter < kIterations; ++iter) {
    std::vector<uint8_t> f = base;
    for (int m = 0, count = 1 + static_cast<int>(pick(3)); m < count; ++m) {
      const uint64_t n = f.size() >= 8 ? read_le64(f) : 0;
      const size_t header_end = static_cast<size_t>(std::min<uint64_t>(8 + n, f.size()));
      switch (pick(7)) {
        case 0:  // truncate
          f.resize(pick(f.size() + 1));
          break;
        case 1:  // flip a bit anywhere
          if (!f.empty()) f[pick(f.size())] ^= static_cast<uint8_t>(1u << pick(8));
          break;
        case 2:  // a random byte in the header
          if (header_end > 8) f[8 + pick(header_end - 8)] = static_cast<uint8_t>(rng());
          break;
        case 3: {  // a new header length
          const uint64_t choices[] = {n + pick(33) - 16, rng(), pick(f.size() + 16),
                                      io::kSafetensorsMaxHeaderBytes + 1, 0};
          set_length(f, choices[pick(5)]);
          break;
        }
        case 4:
        case 5: {  // a JSON edit: replace a few header bytes with a token, keeping the framing
          if (header_end <= 8) break;
          size_t at = 8 + pick(header_end - 8);
          size_t erase = std::min(pick(5), header_end - at);
          const std::string& tok = tokens[pick(std::size(tokens))];
          f.erase(f.begin() + static_cast<std::ptrdiff_t>(at),
                  f.begin() + static_cast<std::ptrdiff_t>(at + erase));
          f.insert(f.begin() + static_cast<std::ptrdiff_t>(at), tok.begin(), tok.end());
          if (pick(4) != 0) set_length(f, n + tok.size() - erase);
          break;
        }
        case 6:  // extra or missing data bytes
          if (pick(2)) {
            f.push_back(static_cast<uint8_t>(rng()));
          } else if (f.size() > header_end) {
            f.pop_back();
          }
          break;
      }
    }
    try {
      SafetensorsContents c = io::parse_safetensors(f, "fuzz");
      size_t total = 0;
      for (const auto& [name, t] : c.tensors) total += t.numel() * t.element_size();
      EXPECT_LE(total, f.size());
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": not a tessera::Error: " << e.what();
    } catch (...) {
      ADD_FAILURE() << "iteration " << iter << ": unknown exception";
    }
  }
  EXPECT_EQ(parsed + rejected, kIterations);
  EXPECT_GT(parsed, 0);
  EXPECT_GT(rejected, kIterations / 2);
}

// ---------------------------------------------------------------- reference implementation

// Runs only where python3 has numpy and safetensors; the test never installs anything.
TEST_F(IoTest, CrossCheckWithPythonSafetensors) {
  if (std::system("python3 -c 'import numpy, safetensors.numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with numpy and safetensors is not available";
  }
  io::save_safetensors(path("ours.safetensors"),
                       {{"a", arange(0, 6, 1, DType::Float32).reshape({2, 3})},
                        {"b", from_vector<int64_t>({-1, int64_t{1} << 40})},
                        {"c", from_vector<uint8_t>({1, 0, 1}).to(DType::Bool)},
                        {"d", from_vector<float16>({float16(0.5f), float16(-2.0f)})}},
                       {{"who", "tessera"}});
  const std::string script = path("check.py");
  std::ofstream(script) << R"(import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
assert t["a"].dtype == np.float32 and (t["a"] == np.arange(6, dtype=np.float32).reshape(2, 3)).all()
assert t["b"].dtype == np.int64 and list(t["b"]) == [-1, 1 << 40]
assert t["c"].dtype == np.bool_ and list(t["c"]) == [True, False, True]
assert t["d"].dtype == np.float16 and list(t["d"]) == [0.5, -2.0]
with safe_open(sys.argv[1], "np") as f:
    assert f.metadata() == {"who": "tessera"}
save_file({"x": np.arange(4, dtype=np.int32).reshape(2, 2), "y": np.array([1.5])}, sys.argv[2],
          metadata={"m": "v"})
)";
  const std::string cmd =
      "python3 " + script + " " + path("ours.safetensors") + " " + path("theirs.safetensors");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "the reference implementation rejected our file";
  SafetensorsContents theirs = io::load_safetensors(path("theirs.safetensors"));
  EXPECT_EQ(theirs.metadata, (std::map<std::string, std::string>{{"m", "v"}}));
  ASSERT_EQ(theirs.tensors.size(), 2u);
  for (const auto& [name, t] : theirs.tensors) {
    if (name == "x") {
      EXPECT_EQ(t.shape(), Shape({2, 2}));
      EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3}));
    } else {
      EXPECT_EQ(name, "y");
      EXPECT_EQ(t.to_vector<double>(), std::vector<double>{1.5});
    }
  }
}

}  // namespace
}  // namespace tessera
