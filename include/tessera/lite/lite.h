// Tessera lite: the runtime for converted models on phones and small devices. It depends
// on nothing of the training library (only the C++ standard library and the flatbuffers
// headers), so it builds alone (`tessera_lite`).
//
//   std::unique_ptr<lite::Model> model;
//   if (auto r = lite::Model::load("model.tlite", model); !r.ok()) die(r.message);
//   lite::Interpreter interpreter(*model);
//   interpreter.allocate();                  // one arena for every activation
//   std::memcpy(interpreter.input_data(0), image, interpreter.input(0).bytes);
//   interpreter.invoke();                    // allocates nothing, throws nothing
//   const float* logits = static_cast<const float*>(interpreter.output_data(0));
//
// Nothing here throws on bad input: calls return a Result whose message says what is wrong
// and where. Models are checked once, when loaded, so that running them cannot read or
// write outside their buffers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// The library is built with hidden symbols; this is its interface.
#define TESSERA_LITE_API __attribute__((visibility("default")))

namespace tessera::lite {

enum class Status : int {
  ok = 0,
  io_error,          // the file could not be read
  invalid_model,     // the file is not a well-formed lite model
  invalid_argument,  // a call's argument is wrong (index, size)
  unsupported,       // a well-formed model needs something this build lacks
  not_allocated,     // invoke or data access before allocate()
};
TESSERA_LITE_API const char* status_name(Status status);

struct Result {
  Status status = Status::ok;
  std::string message;  // empty when ok
  bool ok() const { return status == Status::ok; }
};

enum class DType : uint8_t { float32, float16, int8, uint8, int32, int64 };
TESSERA_LITE_API size_t dtype_size(DType dtype);
TESSERA_LITE_API const char* dtype_name(DType dtype);

// What a model input or output is.
struct TensorInfo {
  std::string_view name;
  DType dtype = DType::float32;
  std::span<const int32_t> shape;
  size_t bytes = 0;
  // Per-tensor quantization (scale 0 when the tensor is not quantized).
  float scale = 0;
  int64_t zero_point = 0;
};

struct ModelData;  // the checked model (src/lite/model.h)

class TESSERA_LITE_API Model {
 public:
  // Maps the file read-only and checks it.
  static Result load(const std::string& path, std::unique_ptr<Model>& out);
  // A model in caller memory, which must stay alive and unchanged while the model is used;
  // constants are used in place (64-byte alignment of `data` keeps them aligned).
  static Result from_buffer(const void* data, size_t size, std::unique_ptr<Model>& out);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  uint32_t version() const;
  size_t num_operators() const;
  // The value of a metadata entry ("" when absent).
  std::string_view metadata(std::string_view key) const;
  const ModelData& data() const { return *data_; }

 private:
  Model();
  std::unique_ptr<ModelData> data_;
};

class TESSERA_LITE_API Interpreter {
 public:
  explicit Interpreter(const Model& model);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Prepares every operator (checking its tensors) and plans one arena for all
  // activations, reusing memory between tensors whose lifetimes do not overlap. With
  // `arena`, uses that caller memory (64-byte aligned, at least arena_bytes_needed()).
  Result allocate(void* arena = nullptr, size_t arena_bytes = 0);
  // The arena size the model needs (known after a first allocate(), or by allocate with
  // too small an arena, which fails naming it).
  size_t arena_bytes() const;

  size_t num_inputs() const;
  size_t num_outputs() const;
  TensorInfo input(size_t i) const;
  TensorInfo output(size_t i) const;
  // Where to write input i and read output i (null before allocate or for a bad index).
  void* input_data(size_t i);
  const void* output_data(size_t i) const;
  // Copies `bytes` (exactly the input's size) into input i.
  Result set_input(size_t i, const void* data, size_t bytes);

  // Runs every operator in order. Allocates no memory and never throws.
  Result invoke();

  // Seconds each operator took in the last invoke, when profiling is on.
  void set_profiling(bool on);
  std::span<const double> operator_seconds() const;
  std::string_view operator_name(size_t op) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tessera::lite
