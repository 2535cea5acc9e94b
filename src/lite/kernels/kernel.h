// The lite kernels' interface: prepare() checks an operator's tensors and options once, at
// allocation, so that eval() can run without checks, allocation or failure.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "../model.h"

// Loops compiled for AVX-512, AVX2 and plain x86-64, chosen when the library loads; other
// machines (aarch64) get the portable build. Only the plain convolution loops (float32 and
// int8, where the register tiles do not apply), the fully connected layer and the LSTM's
// products use it (each clone costs library size); the tiles and the int8 dot products
// dispatch themselves (conv_tiles.h, dot.h), and the light loops stay plain.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TESSERA_LITE_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TESSERA_LITE_MULTIVERSION
#endif

// Code that runs once per model (prepare, weight packing): marked cold, GCC builds it for
// size, which keeps the library small while the kernels' loops stay at -O3.
#define TESSERA_LITE_COLD __attribute__((cold))

namespace tessera::lite {

// Float32 kernels that also run on int8 (unary and binary elementwise ops, mean and sum,
// softmax, resize): their int8 inputs are dequantized into scratch, the float32 loops run
// there, and the result is quantized into the int8 output (int8 in and out, float inside,
// as the integer layers requantize in float). Set by prepare_int8_float.
struct Int8Float {
  bool on = false;
  int inputs = 0;
  float scale[2] = {};  // inputs'
  int32_t zero[2] = {};
  float out_inv_scale = 1;
  int32_t out_zero = 0;
  size_t at[3] = {};  // scratch offsets (bytes) of the float inputs, then the output
};

struct OpContext {
  int index = 0;  // position in the model, for messages
  const OpDesc* desc = nullptr;
  std::vector<const TensorDesc*> in, out;  // in[i] is null for an absent optional input
  std::vector<void*> in_data, out_data;    // set by allocate()
  void* scratch = nullptr;                 // scratch_bytes from prepare, 64-byte aligned
  // Memory for the whole run (packed weights), persistent_bytes set by prepare() and filled
  // by the kernel's init() once allocate() has placed it.
  size_t persistent_bytes = 0;
  void* persistent = nullptr;
  // What prepare() worked out for eval() (geometry, strides), so that eval() neither checks
  // nor allocates.
  alignas(8) unsigned char params[256] = {};
  // Every output is empty: invoke() skips the operator (its loops may still span huge dims
  // of the other axes, time without work).
  bool writes_nothing = false;
  Int8Float int8;

  const schema::Operator& op() const { return *desc->op; }
  template <typename T>
  const T* input(size_t i) const {
    return static_cast<const T*>(in_data[i]);
  }
  template <typename T>
  T* output(size_t i) const {
    return static_cast<T*>(out_data[i]);
  }
  template <typename P>
  P& params_as() {
    static_assert(sizeof(P) <= sizeof(params) && std::is_trivially_copyable_v<P>);
    return *reinterpret_cast<P*>(params);
  }
  template <typename P>
  const P& params_as() const {
    static_assert(sizeof(P) <= sizeof(params) && std::is_trivially_copyable_v<P>);
    return *reinterpret_cast<const P*>(params);
  }
};

struct Kernel {
  // Checks tensors and options; sets *scratch_bytes (0 unless the kernel needs scratch).
  Result (*prepare)(OpContext& ctx, size_t* scratch_bytes);
  void (*eval)(const OpContext& ctx);
  // Optional: fills ctx.persistent after allocation (packs weights).
  void (*init)(const OpContext& ctx) = nullptr;
};

// The kernel for an op code (every code of the schema has one).
const Kernel& kernel_for(schema::OpCode code);

// "operator 3 (Conv2D): " + message, as an invalid_model Result.
Result op_error(const OpContext& ctx, const std::string& message);
Result op_unsupported(const OpContext& ctx, const std::string& message);
std::string shape_string(const std::vector<int32_t>& shape);

// Common checks: the number of inputs (min..max, optional ones may be absent) and outputs;
// every present tensor of dtype `dtype`.
Result expect_arity(const OpContext& ctx, size_t min_in, size_t max_in, size_t outs);
Result expect_dtype(const OpContext& ctx, DType dtype);
// The output's shape must be `shape`.
Result expect_output_shape(const OpContext& ctx, size_t i, const std::vector<int32_t>& shape);

// Integer layers (Conv2D, DepthwiseConv2D, FullyConnected): int8 input and output, each
// one scale and zero point; int8 weights, symmetric (zero point 0), one scale or one per
// output channel (along the weights' axis `w_axis`); an int32 bias. Results are requantized
// in float: y = clamp(round(acc * x_scale * w_scale[o] / y_scale) + y_zero, lo, hi), where
// lo and hi also apply the fused activation.
struct Requant {
  float x_scale, y_inv_scale;
  int32_t x_zero, y_zero, lo, hi;
  bool per_channel;
};
Result check_int8_layer(const OpContext& ctx, int w_axis, int channels, schema::Activation act,
                        Requant* q);
// Rounds half away from zero; unlike lrintf, it vectorizes (a truncating conversion).
inline int32_t round_to_int(float x) { return static_cast<int32_t>(x + std::copysign(0.5f, x)); }
inline int8_t requantize(int32_t acc, float multiplier, const Requant& q) {
  int32_t v = round_to_int(static_cast<float>(acc) * multiplier) + q.y_zero;
  return static_cast<int8_t>(std::min(std::max(v, q.lo), q.hi));
}
// Whether a tensor holds int8 with one scale and zero point.
bool is_int8_per_tensor(const TensorDesc& t);

// For kernels with float32 loops (Int8Float): the first `inputs` inputs and the output are
// all float32, or all int8 with one scale and zero point (then float copies of each go in
// scratch, after *scratch_bytes, which grows). Anything else is an error naming the op.
Result prepare_int8_float(OpContext& ctx, int inputs, size_t* scratch_bytes);
// In eval: input i as float32 (dequantized into scratch for int8), the float32 buffer the
// loops write, and the quantization of that buffer into the int8 output (nothing for
// float32).
const float* float_input(const OpContext& ctx, int i);
float* float_output(const OpContext& ctx);
void finish_float_output(const OpContext& ctx);
// Round to nearest (half away from zero) and clamp to int8; scale * (q - zero).
void quantize(const float* x, int8_t* y, int64_t n, float inv_scale, int32_t zero);
void dequantize(const int8_t* x, float* y, int64_t n, float scale, int32_t zero);

inline float activate(float v, schema::Activation a) {
  if (a == schema::Activation_Relu) return std::max(v, 0.0f);
  if (a == schema::Activation_Relu6) return std::min(std::max(v, 0.0f), 6.0f);
  return v;
}

// Kernel tables by file, merged by kernel_for().
extern const Kernel kConv2D, kDepthwiseConv2D, kTransposeConv2D, kFullyConnected;
extern const Kernel kMaxPool2D, kAveragePool2D, kReshape, kTranspose, kConcat, kPad, kMean,
    kSoftmax, kResize, kEmbeddingLookup, kSlice, kLstm;
extern const Kernel kUnary, kBinary, kQuantize, kDequantize, kUnsupported;

}  // namespace tessera::lite
