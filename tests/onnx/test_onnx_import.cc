// ONNX import: models built here with the protobuf API, imported, run and compared with
// the same network written with Tessera's ops; plus the errors hostile files must give.
// (The conformance suite, tools/onnx_conformance.cc, covers the op mappings one by one.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "../src/io/file_inside_folder.h"
#include "../src/io/onnx/tensor_proto.h"
#include "tessera/graph/executor.h"
#include "tessera/graph/saved_model.h"
#include "tessera/io/onnx.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace tessera;
namespace tonnx = tessera::onnx;
using tessera::testing::expect_close;
using tessera::testing::random_tensor;

namespace {

::onnx::TensorProto to_proto(const std::string& name, const Tensor& t) {
  ::onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(tonnx::dtype_to_onnx(t.dtype()));
  for (int64_t d : t.shape()) p.add_dims(d);
  Tensor c = t.contiguous();
  p.set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
  return p;
}

// A model with one opset of the default domain and a graph filled by the caller.
struct ModelBuilder {
  ::onnx::ModelProto model;
  ::onnx::GraphProto* g;
  explicit ModelBuilder(int64_t opset = 13) {
    model.set_ir_version(8);
    auto* o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = model.mutable_graph();
    g->set_name("test");
  }
  void input(const std::string& name, std::vector<int64_t> dims,
             int type = ::onnx::TensorProto::FLOAT, std::vector<std::string> params = {}) {
    auto* v = g->add_input();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    auto* shape = tt->mutable_shape();
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = shape->add_dim();
      if (i < params.size() && !params[i].empty()) {
        d->set_dim_param(params[i]);
      } else {
        d->set_dim_value(dims[i]);
      }
    }
  }
  void output(const std::string& name) { g->add_output()->set_name(name); }
  void init(const std::string& name, const Tensor& t) { *g->add_initializer() = to_proto(name, t); }
  ::onnx::NodeProto* node(const std::string& op, std::vector<std::string> in,
                          std::vector<std::string> out, const std::string& name = "") {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(g->node_size()) : name);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    return n;
  }
  static void attr(::onnx::NodeProto* n, const std::string& name, std::vector<int64_t> ints) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INTS);
    for (int64_t v : ints) a->add_ints(v);
  }
  static void attr(::onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(v);
  }
  std::string bytes() const { return model.SerializeAsString(); }
  tonnx::ImportedModel load(const tonnx::ImportOptions& options = {}) const {
    std::string b = bytes();
    return tonnx::load_bytes({reinterpret_cast<const uint8_t*>(b.data()), b.size()}, options);
  }
};

TensorList run(const graph::Graph& g, const TensorList& inputs) {
  graph::Executor executor(std::make_shared<graph::Graph>(g));
  return executor.run(inputs);
}

// conv 1->4 3x3 (pads 1) + relu + maxpool 2 + flatten + gemm 64->5, as PyTorch exports it.
ModelBuilder small_cnn(const Tensor& w, const Tensor& b, const Tensor& fc_w, const Tensor& fc_b,
                       bool dynamic_batch) {
  ModelBuilder m;
  m.input("x", {2, 1, 8, 8}, ::onnx::TensorProto::FLOAT, {dynamic_batch ? "N" : ""});
  m.init("w", w);
  m.init("b", b);
  m.init("fc_w", fc_w);
  m.init("fc_b", fc_b);
  auto* conv = m.node("Conv", {"x", "w", "b"}, {"c"});
  ModelBuilder::attr(conv, "pads", {1, 1, 1, 1});
  m.node("Relu", {"c"}, {"r"});
  auto* pool = m.node("MaxPool", {"r"}, {"p"});
  ModelBuilder::attr(pool, "kernel_shape", {2, 2});
  ModelBuilder::attr(pool, "strides", {2, 2});
  m.node("Flatten", {"p"}, {"f"});
  auto* gemm = m.node("Gemm", {"f", "fc_w", "fc_b"}, {"y"});
  ModelBuilder::attr(gemm, "transB", int64_t{1});
  m.output("y");
  return m;
}

Tensor small_cnn_eager(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& fc_w,
                       const Tensor& fc_b) {
  Tensor h = max_pool2d(relu(conv2d(x, w, b, 1, 1)), 2, 2);
  return add(matmul(flatten(h, 1), fc_w.t()), fc_b);
}

struct CnnWeights {
  Tensor w = random_tensor({4, 1, 3, 3}, DType::Float32, -1, 1, 1);
  Tensor b = random_tensor({4}, DType::Float32, -1, 1, 2);
  Tensor fc_w = random_tensor({5, 64}, DType::Float32, -1, 1, 3);
  Tensor fc_b = random_tensor({5}, DType::Float32, -1, 1, 4);
};

TEST(OnnxImport, SmallCnnMatchesEagerOps) {
  CnnWeights p;
  tonnx::ImportedModel m = small_cnn(p.w, p.b, p.fc_w, p.fc_b, false).load();
  EXPECT_EQ(m.input_names, std::vector<std::string>{"x"});
  EXPECT_EQ(m.output_names, std::vector<std::string>{"y"});
  EXPECT_EQ(m.opset, 13);
  Tensor x = random_tensor({2, 1, 8, 8}, DType::Float32, 0, 1, 5);
  expect_close(run(m.graph, {x})[0], small_cnn_eager(x, p.w, p.b, p.fc_w, p.fc_b), 1e-5, 1e-5);
}

TEST(OnnxImport, NamedDimStaysUnknown) {
  CnnWeights p;
  tonnx::ImportedModel m = small_cnn(p.w, p.b, p.fc_w, p.fc_b, true).load();
  EXPECT_EQ(m.graph.values[m.graph.inputs[0]].shape[0], graph::kUnknownDim);
  graph::Executor executor(std::make_shared<graph::Graph>(m.graph));
  for (int64_t batch : {1, 3}) {
    Tensor x = random_tensor({batch, 1, 8, 8}, DType::Float32, 0, 1, 6);
    expect_close(executor.run({x})[0], small_cnn_eager(x, p.w, p.b, p.fc_w, p.fc_b), 1e-5, 1e-5);
  }
}

TEST(OnnxImport, SavedAndReloadedGivesTheSameOutputs) {
  CnnWeights p;
  tonnx::ImportedModel m = small_cnn(p.w, p.b, p.fc_w, p.fc_b, true).load();
  std::string path = (fs::temp_directory_path() / "tessera_onnx_import.tsm").string();
  graph::save_model(path, {{"serve", std::make_shared<graph::Graph>(m.graph)}});
  graph::SavedModel saved = graph::SavedModel::load(path);
  Tensor x = random_tensor({2, 1, 8, 8}, DType::Float32, 0, 1, 7);
  Tensor a = run(m.graph, {x})[0], b = saved.run({x})[0];
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  fs::remove(path);
}

TEST(OnnxImport, TrainableInitializersBecomeVariables) {
  CnnWeights p;
  tonnx::ImportedModel m = small_cnn(p.w, p.b, p.fc_w, p.fc_b, false).load({.trainable = true});
  std::vector<std::string> variables;
  for (const auto& v : m.graph.values) {
    if (v.kind == graph::ValueKind::variable) variables.push_back(v.name);
  }
  std::sort(variables.begin(), variables.end());
  EXPECT_EQ(variables, (std::vector<std::string>{"b", "fc_b", "fc_w", "w"}));
  // Without it they are constants.
  tonnx::ImportedModel frozen = small_cnn(p.w, p.b, p.fc_w, p.fc_b, false).load();
  for (const auto& v : frozen.graph.values) EXPECT_NE(v.kind, graph::ValueKind::variable);
}

TEST(OnnxImport, ShapeArithmeticIsFoldedAtImport) {
  // y = Reshape(x, Concat(Shape(x)[0:1], [-1])): PyTorch's flatten export.
  ModelBuilder m;
  m.input("x", {3, 4, 5});
  auto* shape = m.node("Shape", {"x"}, {"s"});
  (void)shape;
  m.init("starts", from_vector<int64_t>({0}, {1}));
  m.init("ends", from_vector<int64_t>({1}, {1}));
  m.init("minus_one", from_vector<int64_t>({-1}, {1}));
  m.node("Slice", {"s", "starts", "ends"}, {"batch"});
  auto* cat = m.node("Concat", {"batch", "minus_one"}, {"target"});
  ModelBuilder::attr(cat, "axis", int64_t{0});
  m.node("Reshape", {"x", "target"}, {"y"});
  m.output("y");
  tonnx::ImportedModel imported = m.load();
  // Only the reshape is left in the graph.
  ASSERT_EQ(imported.graph.nodes.size(), 1u);
  Tensor x = random_tensor({3, 4, 5}, DType::Float32);
  EXPECT_EQ(run(imported.graph, {x})[0].shape(), Shape({3, 20}));
}

// A transformer's reshape to heads as PyTorch exports it with dynamic axes: the batch and
// sequence sizes read with Shape stay unknown, and arithmetic on a known size (the model
// width over the head size) folds at import.
TEST(OnnxImport, SizesReadWithShapeStayUnknownAndKnownOnesFold) {
  ModelBuilder m;
  m.input("x", {2, 5, 8}, ::onnx::TensorProto::FLOAT, {"N", "T"});
  m.init("zero", from_vector<int64_t>({0}, {1}));
  m.init("one", from_vector<int64_t>({1}, {1}));
  m.init("two", from_vector<int64_t>({2}, {1}));
  m.init("head_size", from_vector<int64_t>({2}, {1}));
  m.node("Shape", {"x"}, {"s"});
  m.node("Gather", {"s", "zero"}, {"n"});
  m.node("Gather", {"s", "one"}, {"t"});
  m.node("Gather", {"s", "two"}, {"d"});
  m.node("Div", {"d", "head_size"}, {"heads"});  // 8 / 2: known, folded
  auto* cat = m.node("Concat", {"n", "t", "heads", "head_size"}, {"target"});
  ModelBuilder::attr(cat, "axis", int64_t{0});
  m.node("Reshape", {"x", "target"}, {"y"});
  m.output("y");
  tonnx::ImportedModel imported = m.load();
  ASSERT_EQ(imported.graph.nodes.size(), 1u) << imported.graph.to_string();
  graph::Executor executor(std::make_shared<graph::Graph>(imported.graph));
  for (auto [n, t] : {std::pair<int64_t, int64_t>{1, 5}, {3, 7}}) {
    Tensor x = random_tensor({n, t, 8}, DType::Float32, -1, 1, n + t);
    EXPECT_EQ(executor.run({x})[0].to_vector<float>(), reshape(x, {n, t, 4, 2}).to_vector<float>());
  }
  // A size computed from unknown ones (N * T) cannot be redone by the graph: an error
  // that names the op, not a constant frozen at the traced size.
  m.node("Mul", {"n", "t"}, {"rows"});
  m.init("minus_one", from_vector<int64_t>({-1}, {1}));
  auto* cat2 = m.node("Concat", {"rows", "minus_one"}, {"rows_target"});
  ModelBuilder::attr(cat2, "axis", int64_t{0});
  m.node("Reshape", {"x", "rows_target"}, {"flat"});
  m.output("flat");
  try {
    m.load();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown dimension"), std::string::npos) << e.what();
  }
}

TEST(OnnxImport, ValuesNeededAtImportNameTheInput) {
  ModelBuilder m;
  m.input("x", {2, 6});
  m.input("shape", {2}, ::onnx::TensorProto::INT64);
  m.node("Reshape", {"x", "shape"}, {"y"}, "reshape_node");
  m.output("y");
  try {
    m.load();
    FAIL() << "expected NeedsValueError";
  } catch (const tonnx::NeedsValueError& e) {
    EXPECT_EQ(e.input(), "shape");
    EXPECT_NE(std::string(e.what()).find("reshape_node"), std::string::npos) << e.what();
  }
  tonnx::ImportedModel fixed =
      m.load({.constant_inputs = {{"shape", from_vector<int64_t>({3, 4}, {2})}}});
  EXPECT_EQ(fixed.input_names, std::vector<std::string>{"x"});
  EXPECT_EQ(run(fixed.graph, {random_tensor({2, 6}, DType::Float32)})[0].shape(), Shape({3, 4}));
}

TEST(OnnxImport, UnsupportedOpsAreListedTogether) {
  ModelBuilder m;
  m.input("x", {2});
  m.node("FancyOp", {"x"}, {"a"}, "first");
  m.node("Relu", {"a"}, {"b"});
  m.node("OtherOp", {"b"}, {"c"}, "second");
  auto* custom = m.node("Thing", {"c"}, {"y"}, "third");
  custom->set_domain("com.example");
  m.output("y");
  try {
    m.load();
    FAIL() << "expected UnsupportedError";
  } catch (const tonnx::UnsupportedError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("3 unsupported nodes"), std::string::npos) << what;
    EXPECT_NE(what.find("FancyOp (node 'first', opset 13)"), std::string::npos) << what;
    EXPECT_NE(what.find("OtherOp (node 'second', opset 13)"), std::string::npos) << what;
    EXPECT_NE(what.find("domain 'com.example'"), std::string::npos) << what;
  }
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

bool has(const std::string& what, const std::string& part) {
  return what.find(part) != std::string::npos;
}

TEST(OnnxImport, HostileModelsGiveErrors) {
  {
    std::string garbage = "\x0a\xff\xff\xff\xff\x0f garbage";
    std::string what = error_of([&] {
      tonnx::load_bytes({reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size()});
    });
    EXPECT_TRUE(has(what, "not an ONNX model")) << what;
  }
  {
    ModelBuilder m;  // a cycle: a reads b, b reads a
    m.input("x", {2});
    m.node("Add", {"x", "b"}, {"a"});
    m.node("Relu", {"a"}, {"b"});
    m.output("b");
    EXPECT_TRUE(has(error_of([&] { m.load(); }), "reads 'b', which no earlier node"))
        << error_of([&] { m.load(); });
  }
  {
    ModelBuilder m;  // raw data shorter than the dims say
    m.input("x", {2});
    ::onnx::TensorProto* w = m.g->add_initializer();
    w->set_name("w");
    w->set_data_type(::onnx::TensorProto::FLOAT);
    w->add_dims(1000);
    w->set_raw_data(std::string(12, '\0'));
    m.node("Add", {"x", "w"}, {"y"});
    m.output("y");
    EXPECT_TRUE(has(error_of([&] { m.load(); }), "12 bytes of raw data"))
        << error_of([&] { m.load(); });
  }
  {
    ModelBuilder m;  // dims whose product overflows
    m.input("x", {2});
    ::onnx::TensorProto* w = m.g->add_initializer();
    w->set_name("w");
    w->set_data_type(::onnx::TensorProto::FLOAT);
    for (int i = 0; i < 4; ++i) w->add_dims(int64_t{1} << 40);
    m.node("Add", {"x", "w"}, {"y"});
    m.output("y");
    EXPECT_TRUE(has(error_of([&] { m.load(); }), "limit")) << error_of([&] { m.load(); });
  }
  {
    ModelBuilder m;  // a negative input dim
    m.input("x", {-5});
    m.node("Relu", {"x"}, {"y"});
    m.output("y");
    EXPECT_TRUE(has(error_of([&] { m.load(); }), "negative")) << error_of([&] { m.load(); });
  }
  {
    ModelBuilder m;  // an op's shape rules broken: conv weight of the wrong rank
    m.input("x", {1, 1, 4, 4});
    m.init("w", zeros({3, 3}));
    m.node("Conv", {"x", "w"}, {"y"}, "bad_conv");
    m.output("y");
    std::string what = error_of([&] { m.load(); });
    EXPECT_TRUE(has(what, "bad_conv") && has(what, "weight rank")) << what;
  }
  {
    ModelBuilder m(99);  // an opset from the future
    m.input("x", {2});
    m.node("Relu", {"x"}, {"y"});
    m.output("y");
    EXPECT_TRUE(has(error_of([&] { m.load(); }), "opset 99")) << error_of([&] { m.load(); });
  }
}

// A model folder with a weights file, and a file outside it whose bytes must never reach a
// model: the reproduction (a link to /etc/passwd) and every other way out.
struct ExternalDataFolder {
  fs::path top =
      fs::temp_directory_path() / ("tessera_onnx_external_" + std::to_string(::getpid()));
  fs::path dir = top / "model";
  fs::path secret = top / "secret.bin";
  Tensor w = random_tensor({4}, DType::Float32);
  // 32 bytes: any 16-byte (four-float) window of it is readable.
  static constexpr const char* kSecret = "SECRET-BYTES-16!SECRET-BYTES-32!";

  ExternalDataFolder() {
    fs::remove_all(top);
    fs::create_directories(dir / "sub");
    std::ofstream(secret, std::ios::binary) << kSecret;
    std::ofstream out(dir / "weights.bin", std::ios::binary);
    out << "pad.";  // the tensor starts at offset 4
    out.write(static_cast<const char*>(w.data_ptr()), 16);
  }
  ~ExternalDataFolder() { fs::remove_all(top); }

  // Writes model.onnx with `w` (4 float32) stored at `location` and returns its path.
  std::string model_with(const std::string& location, const std::string& offset = "4") const {
    ModelBuilder m;
    m.input("x", {4});
    ::onnx::TensorProto* t = m.g->add_initializer();
    t->set_name("w");
    t->set_data_type(::onnx::TensorProto::FLOAT);
    t->add_dims(4);
    t->set_data_location(::onnx::TensorProto::EXTERNAL);
    auto add_entry = [&](const char* key, const std::string& value) {
      auto* e = t->add_external_data();
      e->set_key(key);
      e->set_value(value);
    };
    add_entry("location", location);
    add_entry("offset", offset);
    m.node("Add", {"x", "w"}, {"y"});
    m.output("y");
    std::ofstream(dir / "model.onnx", std::ios::binary) << m.bytes();
    return (dir / "model.onnx").string();
  }

  // The import must fail with an error naming the tensor, the path and `why`, and neither
  // the error nor anything else may carry the outside file's bytes.
  void expect_refused(const std::string& location, const std::string& why,
                      const std::string& offset = "4") const {
    std::string what = error_of([&] { tonnx::load(model_with(location, offset)); });
    std::string shown = location.substr(0, location.find('\0'));
    EXPECT_TRUE(has(what, "tensor 'w'") && has(what, shown) && has(what, why))
        << location << ": " << what;
    EXPECT_FALSE(has(what, "SECRET") || has(what, "root:")) << what;
  }
};

TEST(OnnxImport, ExternalDataStaysInsideTheModelFolder) {
  ExternalDataFolder f;
  Tensor x = random_tensor({4}, DType::Float32, -1, 1, 9);
  // Accepted: names that resolve, without a link, to the weights file inside the folder.
  for (const char* ok : {"weights.bin", "./weights.bin", ".//weights.bin", "sub/../weights.bin",
                         "sub//..//./weights.bin"}) {
    tonnx::ImportedModel m = tonnx::load(f.model_with(ok));
    expect_close(run(m.graph, {x})[0], add(x, f.w));
  }
  // The reproduction: a link inside the folder to /etc/passwd.
  fs::create_symlink("/etc/passwd", f.dir / "link.bin");
  f.expect_refused("link.bin", "is a symbolic link", "0");
  // A link to a file outside, to the weights inside, and a folder link on the way.
  fs::create_symlink(f.secret, f.dir / "secret_link.bin");
  f.expect_refused("secret_link.bin", "is a symbolic link", "0");
  fs::create_symlink(f.dir / "weights.bin", f.dir / "alias.bin");
  f.expect_refused("alias.bin", "is a symbolic link");
  fs::create_symlink(f.top, f.dir / "up");
  f.expect_refused("up/secret.bin", "passes through a symbolic link ('up')", "0");
  fs::create_symlink("sub", f.dir / "sub_alias");
  f.expect_refused("sub_alias/../weights.bin", "passes through a symbolic link");
  // Nested ways out, resolved component by component.
  f.expect_refused("../secret.bin", "leaves the model's folder", "0");
  f.expect_refused("sub/../../secret.bin", "leaves the model's folder", "0");
  f.expect_refused("./sub/.././../model/../secret.bin", "leaves the model's folder", "0");
  f.expect_refused(std::string("weights.bin\0/../../secret.bin", 29), "NUL");
  f.expect_refused("/etc/passwd", "relative", "0");
  f.expect_refused("//etc/passwd", "relative", "0");
  f.expect_refused("sub", "not a regular file");
  f.expect_refused("sub/", "names a folder");
  f.expect_refused("weights.bin/", "names a folder");
  f.expect_refused("missing.bin", "does not exist");
  f.expect_refused("nowhere/weights.bin", "no folder 'nowhere'");
  f.expect_refused("weights.bin/x", "is not a folder");
  // A FIFO (opening one for reading would wait for a writer), a socket, a device.
  ASSERT_EQ(::mkfifo((f.dir / "fifo").c_str(), 0600), 0);
  f.expect_refused("fifo", "not a regular file", "0");
  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock_path = (f.dir / "sock").string();
  if (sock >= 0 && sock_path.size() < sizeof(addr.sun_path)) {
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    f.expect_refused("sock", "not a regular file", "0");
  }
  if (sock >= 0) ::close(sock);
  if (::mknod((f.dir / "zero").c_str(), S_IFCHR | 0600, makedev(1, 5)) == 0) {
    f.expect_refused("zero", "not a regular file", "0");
  } else {
    std::printf("[ note ] mknod not permitted here: the character-device case is skipped\n");
  }
  // Ranges outside the file.
  f.expect_refused("weights.bin", "outside", "12");
}

// The file is checked and read through one descriptor: replacing it after the open (by a
// link to a secret) changes nothing that is read, and a file that shrinks is an error.
TEST(OnnxImport, ExternalDataIsReadFromTheDescriptorThatWasChecked) {
  namespace iod = tessera::io::detail;
  ExternalDataFolder f;
  iod::FileInsideFolder file =
      iod::open_file_inside_folder(f.dir.string(), "weights.bin", "onnx", "tensor 'w'");
  EXPECT_EQ(file.size, 20);
  fs::rename(f.dir / "weights.bin", f.dir / "old.bin");
  fs::create_symlink(f.secret, f.dir / "weights.bin");
  std::string bytes(16, '\0');
  iod::read_file_range(file, 4, 16, bytes.data(), "onnx", "tensor 'w'");
  EXPECT_EQ(std::memcmp(bytes.data(), f.w.data_ptr(), 16), 0);
  // What reading the path again would have given:
  EXPECT_NE(bytes, std::string(ExternalDataFolder::kSecret).substr(4, 16));

  iod::FileInsideFolder shrinking =
      iod::open_file_inside_folder(f.dir.string(), "old.bin", "onnx", "tensor 'w'");
  fs::resize_file(f.dir / "old.bin", 8);
  std::string what =
      error_of([&] { iod::read_file_range(shrinking, 4, 16, bytes.data(), "onnx", "tensor 'w'"); });
  EXPECT_TRUE(has(what, "shrank")) << what;
}

// A model read by a relative path (its folder is "."), from a folder that is itself a
// link (the user's own choice: followed), with a length entry; and the total of external
// data bounded, since every tensor may name the same bytes of one big file.
TEST(OnnxImport, ExternalDataFromRelativeAndLinkedFoldersAndItsTotal) {
  ExternalDataFolder f;
  Tensor x = random_tensor({4}, DType::Float32, -1, 1, 9);
  f.model_with("weights.bin");
  const fs::path cwd = fs::current_path();
  fs::current_path(f.dir);
  tonnx::ImportedModel relative = tonnx::load("model.onnx");
  fs::current_path(cwd);
  expect_close(run(relative.graph, {x})[0], add(x, f.w));
  fs::create_symlink(f.dir, f.top / "linked");
  tonnx::ImportedModel linked = tonnx::load((f.top / "linked" / "model.onnx").string());
  expect_close(run(linked.graph, {x})[0], add(x, f.w));

  ModelBuilder m;
  m.input("x", {4});
  for (const char* name : {"w1", "w2", "w3"}) {
    ::onnx::TensorProto* t = m.g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    t->add_dims(4);
    t->set_data_location(::onnx::TensorProto::EXTERNAL);
    for (auto [key, value] : {std::pair<const char*, const char*>{"location", "weights.bin"},
                              {"offset", "4"},
                              {"length", "16"}}) {
      auto* e = t->add_external_data();
      e->set_key(key);
      e->set_value(value);
    }
  }
  m.node("Add", {"x", "w1"}, {"a"});
  m.node("Add", {"a", "w2"}, {"b"});
  m.node("Add", {"b", "w3"}, {"y"});
  m.output("y");
  const std::string path = (f.dir / "three.onnx").string();
  std::ofstream(path, std::ios::binary) << m.bytes();
  tonnx::ImportedModel three = tonnx::load(path);
  expect_close(run(three.graph, {x})[0], add(add(add(x, f.w), f.w), f.w));
  tonnx::ImportOptions small;
  small.max_external_bytes = 40;  // two of the three tensors
  std::string what = error_of([&] { tonnx::load(path, small); });
  EXPECT_TRUE(has(what, "tensor 'w3'") && has(what, "max_external_bytes")) << what;

  f.expect_refused("weights.bin/.", "names a folder");
  f.expect_refused(std::string(5000, 'a'), "longer than PATH_MAX");
}

// Every malformed model in the committed corpus gives an error, never a crash.
TEST(OnnxImport, CorpusOfMalformedModels) {
  fs::path corpus = fs::path(TESSERA_TEST_DIR) / "corpus" / "onnx";
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(corpus)) {
    ++loaded;
    // None of these names a file that exists in the corpus folder, reached without a link
    // (tests/onnx/make_external_data_corpus.py).
    if (entry.path().filename().string().starts_with("external_data_")) {
      std::string what = error_of([&] { tonnx::load(entry.path().string()); });
      EXPECT_TRUE(has(what, "tensor 'w': external data")) << entry.path() << ": " << what;
      continue;
    }
    try {
      tonnx::ImportedModel m = tonnx::load(entry.path().string());
      // Some corpus files are valid seeds for the fuzzer: they must also run.
      TensorList inputs;
      for (int id : m.graph.inputs) {
        Dims shape = m.graph.values[id].shape;
        for (int64_t& d : shape) d = d < 0 ? 1 : d;
        inputs.push_back(zeros(shape, m.graph.values[id].dtype));
      }
      run(m.graph, inputs);
    } catch (const Error&) {
    }
  }
  EXPECT_GT(loaded, 5);
}

}  // namespace
