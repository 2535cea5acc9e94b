// Saved models: a round trip gives bit-identical outputs; hostile files give clear errors.
// NPY reading and writing.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "saved_model_generated.h"
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/saved_model.h"
#include "tessera/io/npy.h"
#include "tessera/nn/nn.h"
#include "test_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using graph::Graph;
using graph::kUnknownDim;
using graph::SavedModel;
using graph::TensorSpec;
using testing::random_tensor;

std::shared_ptr<Graph> traced_cnn(nn::ModulePtr* keep = nullptr) {
  auto net = std::make_shared<nn::Sequential>();
  const nn::ConvOptions same_relu{.padding = 1, .activation = "relu"};
  net->add(std::make_shared<nn::Conv2d>(1, 4, 3, same_relu), "conv1")
      .add(std::make_shared<nn::MaxPool2d>(2), "pool1")
      .add(std::make_shared<nn::Flatten>(), "flatten")
      .add(std::make_shared<nn::Linear>(4 * 14 * 14, 10), "dense");
  net->eval();
  if (keep) *keep = net;
  graph::NamedTensorList vars = net->named_parameters();
  Graph g = graph::trace([&](const TensorList& in) { return TensorList{net->forward(in[0])}; },
                         {TensorSpec{{kUnknownDim, 1, 28, 28}, DType::Float32, "images"}}, {vars});
  return std::make_shared<Graph>(graph::optimize(std::move(g)));
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("tessera_test_" + name)).string();
}

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(SavedModel, RoundTripIsBitIdenticalAndKeepsNamesAndShapes) {
  nn::ModulePtr net;
  auto g = traced_cnn(&net);
  std::string path = temp_path("roundtrip.tsm");
  graph::save_model(path, {{"serve", g}});
  SavedModel loaded = SavedModel::load(path);
  EXPECT_EQ(loaded.signature_names(), std::vector<std::string>{"serve"});
  const Graph& lg = loaded.graph();
  EXPECT_EQ(lg.nodes.size(), g->nodes.size());
  EXPECT_EQ(lg.parameter_count(), net->num_parameters());
  EXPECT_EQ(lg.values[lg.inputs[0]].shape, (Dims{kUnknownDim, 1, 28, 28}));
  EXPECT_EQ(lg.values[lg.inputs[0]].name, "images");
  bool named = false;
  for (const auto& v : lg.values) named = named || v.name == "conv1.weight";
  EXPECT_TRUE(named);
  graph::Executor original(g);
  for (int64_t batch : {1, 6}) {
    Tensor x = random_tensor({batch, 1, 28, 28}, DType::Float32, 0, 1, batch);
    Tensor a = original.run({x})[0], b = loaded.run({x})[0];
    EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>()) << "batch " << batch;
    NoGradGuard no_grad;
    testing::expect_close(b, net->forward(x), 1e-5, 1e-5);
  }
  fs::remove(path);
}

TEST(SavedModel, SignaturesShareWeightsAndUnknownNamesAreReported) {
  auto g = traced_cnn();
  std::string one = graph::serialize_model({{"serve", g}});
  std::string two = graph::serialize_model({{"serve", g}, {"again", g}});
  // The second signature adds its graph, not another copy of the weights.
  EXPECT_LT(two.size(), one.size() + one.size() / 4);
  SavedModel m = SavedModel::from_bytes(as_bytes(two));
  EXPECT_EQ(m.signature_names().size(), 2u);
  try {
    m.run("missing", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it has: serve, again"), std::string::npos) << e.what();
  }
}

TEST(SavedModel, WrongInputTypeAtRunTimeIsAClearError) {
  SavedModel m =
      SavedModel::from_bytes(as_bytes(graph::serialize_model({{"serve", traced_cnn()}})));
  try {
    m.run({random_tensor({2, 3, 28, 28}, DType::Float32)});
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'images'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("float32[?,1,28,28]"), std::string::npos) << msg;
  }
  EXPECT_THROW(m.run({random_tensor({2, 1, 28, 28}, DType::Float64)}), Error);
}

// A file of format version 1, committed when that was the current format: its
// fused_elementwise program names ops by positions in an enum of that time (every unary
// and binary code there was). It must load, name its ops, and compute what it computed
// then (fused_program_v1_out.npy, written by that build), also after saving it anew.
TEST(SavedModel, Version1FilesStillLoad) {
  const std::string dir = std::string(TESSERA_TEST_DIR) + "/golden/saved_model_v1/";
  SavedModel m = SavedModel::load(dir + "fused_program_v1.tsm");
  const graph::Node& node = m.graph().nodes.at(0);
  ASSERT_STREQ(node.op(), "fused_elementwise");
  EXPECT_EQ(node.attrs.get<std::string>("ops"),
            "neg abs exp tanh sigmoid relu sqrt square silu add sub mul div maximum minimum "
            "relu_backward");
  Tensor x = io::read_npy(dir + "fused_program_v1_x.npy"),
         y = io::read_npy(dir + "fused_program_v1_y.npy"),
         expected = io::read_npy(dir + "fused_program_v1_out.npy");
  EXPECT_EQ(m.run({x, y})[0].to_vector<float>(), expected.to_vector<float>());
  std::string path = (std::filesystem::temp_directory_path() / "tessera_v1_resaved.tsm").string();
  graph::save_model(path, m.signatures());
  SavedModel again = SavedModel::load(path);
  EXPECT_EQ(again.run({x, y})[0].to_vector<float>(), expected.to_vector<float>());
  std::filesystem::remove(path);
}

// ------------------------------------------------------------ hostile files

namespace fb = tessera::fb;

// A valid small model written by hand with the flatbuffers API, which `edit` can spoil.
struct RawModel {
  int64_t weight_offset = 0;
  uint64_t weight_size = 6 * 4;
  std::vector<int64_t> weight_shape = {3, 2};
  std::vector<int64_t> input_shape = {-1, 3};
  std::string op = "matmul";
  std::vector<int32_t> node_inputs = {0, 1};
  std::vector<int32_t> node_outputs = {2};
  int producer = 0;
  uint8_t dtype = static_cast<uint8_t>(DType::Float32);
  uint32_t version = graph::kSavedModelVersion;
  int weight_index = 0;
  std::vector<int32_t> outputs = {2};

  std::string bytes() const {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<fb::Value>> values = {
        fb::CreateValue(b, fb::ValueKind_Input, dtype, b.CreateVector(input_shape), -1, 0,
                        b.CreateString("x")),
        fb::CreateValue(b, fb::ValueKind_Constant, dtype,
                        b.CreateVector(std::vector<int64_t>{3, 2}), -1, 0, b.CreateString("w"),
                        weight_index),
        fb::CreateValue(b, fb::ValueKind_OpOutput, dtype,
                        b.CreateVector(std::vector<int64_t>{-1, 2}), producer, 0)};
    std::vector<flatbuffers::Offset<fb::Node>> nodes = {fb::CreateNode(
        b, b.CreateString(op), 0, b.CreateVector(node_inputs), b.CreateVector(node_outputs))};
    std::vector<flatbuffers::Offset<fb::Symbol>> symbols = {fb::CreateSymbol(b, 0, 0)};
    auto g = fb::CreateGraph(b, b.CreateVector(values), b.CreateVector(nodes),
                             b.CreateVector(std::vector<int32_t>{0}), b.CreateVector(outputs),
                             b.CreateVector(symbols));
    std::vector<flatbuffers::Offset<fb::Signature>> sigs = {
        fb::CreateSignature(b, b.CreateString("serve"), g)};
    std::vector<flatbuffers::Offset<fb::Weight>> weights = {
        fb::CreateWeight(b, b.CreateString("w"), dtype, b.CreateVector(weight_shape),
                         static_cast<uint64_t>(weight_offset), weight_size)};
    std::vector<uint8_t> data(64, 0);
    auto model = fb::CreateSavedModel(b, version, b.CreateString("test"), b.CreateVector(sigs),
                                      b.CreateVector(weights), b.CreateVector(data));
    fb::FinishSavedModelBuffer(b, model);
    return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  }
};

// Every hostile case, with the words its error must contain.
std::vector<std::pair<std::string, std::pair<std::string, std::string>>> hostile_cases() {
  std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases;
  auto add = [&](const std::string& name, RawModel m, const std::string& words) {
    cases.push_back({name, {m.bytes(), words}});
  };
  RawModel m;
  m.weight_offset = 1 << 20;
  add("weight_offset_out_of_range", m, "outside the data block");
  m = {};
  m.weight_offset = -8;  // becomes a huge unsigned offset
  add("weight_offset_wraps", m, "outside the data block");
  m = {};
  m.weight_size = 1000;
  add("weight_size_mismatch", m, "bytes");
  m = {};
  m.weight_shape = {int64_t{1} << 50, 3};
  add("weight_huge_dims", m, "dimension");
  m = {};
  m.weight_shape = {2, 3};
  add("weight_shape_differs_from_value", m, "declared");
  m = {};
  m.op = "no_such_op";
  add("unknown_op", m, "no_such_op");
  m = {};
  m.node_inputs = {2, 1};  // the node reads its own output
  add("cycle", m, "before node");
  m = {};
  m.node_inputs = {0, 7};
  add("input_index_out_of_range", m, "value %7");
  m = {};
  m.node_inputs = {0};
  add("missing_operand", m, "input 1");
  m = {};
  m.producer = 5;
  add("producer_out_of_range", m, "producer");
  m = {};
  m.dtype = 200;
  add("bad_dtype", m, "dtype code");
  m = {};
  m.version = 99;
  add("future_version", m, "version 99");
  m = {};
  m.weight_index = 4;
  add("weight_index_out_of_range", m, "weight 4");
  m = {};
  m.input_shape = {-1, 4};  // x[?,4] @ w[3,2]
  add("shapes_do_not_match_weights", m, "matmul");
  m = {};
  m.outputs = {9};
  add("output_out_of_range", m, "value %9");
  m = {};
  m.input_shape = {-7, 3};
  add("negative_dim", m, "dimension -7");
  m = {};
  std::string good = m.bytes();
  cases.push_back({"truncated_half", {good.substr(0, good.size() / 2), "corrupt or truncated"}});
  cases.push_back({"not_a_model", {std::string("hello, this is not a model at all"), "TSMD"}});
  cases.push_back({"empty", {std::string(), "TSMD"}});
  return cases;
}

TEST(SavedModelHostile, TheHandWrittenModelIsValid) {
  RawModel m;
  SavedModel model = SavedModel::from_bytes(as_bytes(m.bytes()));
  Tensor out = model.run({random_tensor({4, 3}, DType::Float32)})[0];
  EXPECT_EQ(out.shape(), (Shape{4, 2}));
}

TEST(SavedModelHostile, EveryCaseGivesAClearError) {
  // TESSERA_WRITE_CORPUS=dir also writes each case there (how tests/corpus was made).
  const char* corpus = std::getenv("TESSERA_WRITE_CORPUS");
  if (corpus) {  // valid seeds for the fuzzer, beside the hostile cases
    std::ofstream(std::string(corpus) + "/valid_matmul.tsm", std::ios::binary)
        << RawModel{}.bytes();
    std::ofstream(std::string(corpus) + "/valid_cnn.tsm", std::ios::binary)
        << graph::serialize_model({{"serve", traced_cnn()}});
  }
  for (const auto& [name, c] : hostile_cases()) {
    const auto& [bytes, words] = c;
    if (corpus) std::ofstream(std::string(corpus) + "/" + name + ".tsm", std::ios::binary) << bytes;
    try {
      SavedModel m = SavedModel::from_bytes(as_bytes(bytes));
      m.run({random_tensor({2, 3}, DType::Float32)});
      ADD_FAILURE() << name << ": loaded and ran";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << name << ": " << e.what();
    }
  }
}

TEST(SavedModelHostile, TruncationsAndByteFlipsNeverCrash) {
  std::string good = graph::serialize_model({{"serve", traced_cnn()}});
  // Every truncation length in steps, and seeded single-byte corruptions.
  int rejected = 0, loaded = 0;
  for (size_t n = 0; n < good.size(); n += std::max<size_t>(1, good.size() / 300)) {
    try {
      SavedModel::from_bytes(as_bytes(good.substr(0, n)));
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_EQ(loaded, 0);
  Generator gen(3);
  Tensor where = randint(0, static_cast<int64_t>(good.size()), {400}, DType::Int64, &gen);
  Tensor what = randint(0, 256, {400}, DType::Int64, &gen);
  auto pos = where.to_vector<int64_t>(), val = what.to_vector<int64_t>();
  for (size_t i = 0; i < pos.size(); ++i) {
    std::string bad = good;
    bad[pos[i]] = static_cast<char>(val[i]);
    try {
      SavedModel m = SavedModel::from_bytes(as_bytes(bad));
      m.run({random_tensor({1, 1, 28, 28}, DType::Float32)});
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(SavedModelHostile, EveryFileOfTheCommittedCorpusLoadsSafely) {
  // The hand-made cases above and inputs the fuzzer (scripts/fuzz.sh) once crashed on: each
  // must be rejected with an error naming the file, or load and run (under ASan in CI).
  fs::path dir = fs::path(TESSERA_TEST_DIR) / "corpus" / "saved_model";
  ASSERT_TRUE(fs::exists(dir)) << dir;
  int files = 0, rejected = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++files;
    std::optional<SavedModel> m;
    try {
      m = SavedModel::load(entry.path().string());
    } catch (const Error& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find(entry.path().filename().string()), std::string::npos)
          << "the error should name the file: " << e.what();
      continue;
    }
    // Loaded: run it on inputs of its signature (unknown sizes 2); errors are fine, crashes not.
    const Graph& g = m->graph(m->signature_names()[0]);
    TensorList inputs;
    for (int id : g.inputs) {
      Dims shape = g.values[id].shape;
      for (int64_t& d : shape) d = d == kUnknownDim ? 2 : d;
      inputs.push_back(zeros(shape, g.values[id].dtype));
    }
    try {
      m->run(m->signature_names()[0], inputs);
    } catch (const Error&) {
    }
  }
  EXPECT_GE(files, 20);
  EXPECT_GE(rejected, 19);
}

// ------------------------------------------------------------ NPY

TEST(Npy, RoundTripsEveryNumpyDtypeAndShape) {
  for (DType dt : {DType::Bool, DType::Int8, DType::UInt8, DType::Int32, DType::Int64,
                   DType::Float16, DType::Float32, DType::Float64}) {
    for (Shape shape : {Shape{}, Shape{0}, Shape{5}, Shape{2, 3}, Shape{2, 1, 4}}) {
      Tensor t = random_tensor(shape, DType::Float64, 0, 5).to(dt);
      Tensor back = io::parse_npy(as_bytes(io::npy_bytes(t)));
      ASSERT_EQ(back.dtype(), dt);
      ASSERT_EQ(back.shape(), shape);
      EXPECT_EQ(back.to(DType::Float64).to_vector<double>(),
                t.to(DType::Float64).to_vector<double>());
    }
  }
  EXPECT_THROW(io::npy_bytes(zeros({2}, DType::BFloat16)), Error);
}

TEST(Npy, ReadsFortranOrderAndRejectsMalformedHeaders) {
  // What numpy.save writes for np.asfortranarray(np.arange(6, dtype='<i4').reshape(2, 3)).
  std::string header = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string file =
      std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header;
  for (int32_t v : {0, 3, 1, 4, 2, 5}) file.append(reinterpret_cast<const char*>(&v), 4);
  Tensor t = io::parse_npy(as_bytes(file));
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  for (std::string bad : {std::string("\x93NUMPY\x01\x00\xff\xff", 10), std::string("not npy"),
                          file.substr(0, file.size() - 1),
                          std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) +
                              '\0' + std::string(header).replace(header.find("<i4"), 3, ">i4")}) {
    EXPECT_THROW(io::parse_npy(as_bytes(bad)), Error);
  }
}

}  // namespace
}  // namespace tessera
