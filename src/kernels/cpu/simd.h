// Hot float32 loops compiled once per instruction set (generic x86-64, AVX2+FMA,
// AVX-512) from simd_impl.inc; simd() picks the best the CPU supports at run time.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// One Adam step's constants, in the element type (see optimizer_kernels.h).
template <typename T>
struct AdamConstants {
  T one_minus_b1, b2, one_minus_b2, wd, decay, bc2_sqrt, eps, neg_step;
  bool decoupled, amsgrad;
};

enum class FastUnary : uint8_t { Neg, Abs, Exp, Tanh, Sigmoid, Relu, Sqrt, Square, Silu };
// ReluBackward: a where b > 0, else 0 (relu's gradient a given its output b).
enum class FastBinary : uint8_t { Add, Sub, Mul, Div, Max, Min, ReluBackward };
// How the second operand is read: a full array, or one broadcast value.
enum class Operand : uint8_t { Array, ScalarA, ScalarB };

struct SimdTable {
  const char* isa;
  void (*unary_f32)(FastUnary op, const float* x, float* y, int64_t n);
  void (*binary_f32)(FastBinary op, const float* a, const float* b, float* y, int64_t n,
                     Operand mode);
  // Sum of n floats in 64 fixed lanes combined in double: every ISA path adds in the
  // same order, so the result does not depend on the path or the thread count.
  double (*sum_f32)(const float* x, int64_t n);
  // One output row of a 2x2, stride-2 max pooling: inputs rows x[0..2*ow) and
  // x[W..W+2*ow); y[o] is the window's maximum (a NaN wins; ties keep the first tap in
  // row-major order) and idx[o] its position, counted from `base` (x's offset in its plane).
  void (*max_pool_2x2_row_f32)(const float* x, int64_t W, float* y, int64_t* idx, int64_t OW,
                               int64_t base);
  // The same row with only the winning tap of each window (0..3, row-major) in taps[o].
  void (*max_pool_2x2_taps_row_f32)(const float* x, int64_t W, float* y, uint8_t* taps, int64_t OW);
  // A 3x3, stride-1 convolution of a single input channel (a first layer), on an input
  // padded by one zero on every side (rows of W + 2): output rows [h0, h1) of all O planes
  // y[O, H, W], with optional bias[O] and fused relu; and its weight gradient gw9[O, 9] (and
  // bias gradient gb[O] unless null) for output channels [o0, o1), through the relu when
  // relu_out is given, summed over the batch in a fixed order (see simd_impl.inc).
  void (*conv3x3_c1_rows_f32)(const float* xpad, int64_t H, int64_t W, const float* w9,
                              const float* bias, int64_t O, bool relu, float* y, int64_t h0,
                              int64_t h1);
  void (*conv3x3_c1_weight_grad_f32)(const float* xpad, const float* gy, const float* relu_out,
                                     int64_t N, int64_t O, int64_t H, int64_t W, int64_t o0,
                                     int64_t o1, float* gw9, float* gb);
  // The same weight gradient through the relu and a 2x2, stride-2 max pooling after it:
  // gp [N, O, H/2, W/2] is the pooled gradient, pooled the pooled output and taps its
  // winning taps (as max_pool_2x2_taps_row_f32 gives them). Bit for bit the result of the
  // above on the scattered gradient with relu_out.
  void (*conv3x3_c1_pooled_weight_grad_f32)(const float* xpad, const float* gp, const float* pooled,
                                            const uint8_t* taps, int64_t N, int64_t O, int64_t H,
                                            int64_t W, int64_t o0, int64_t o1, float* gw9,
                                            float* gb);
  // 2x2, stride-2 max pooling of max(y, 0) on oneDNN's 16-channel blocked layout (see
  // conv_onednn.h): planes [p0, p1) of y16 [planes][H][W][16] to p16 and taps16
  // [planes][H/2][W/2][16], as max_pool_2x2_taps_row_f32 on relu's output; and its
  // gradient gy16 from gp16, through relu's mask (p16 > 0), zeros off the winning taps.
  void (*relu_max_pool_2x2_blocked16_f32)(const float* y16, int64_t H, int64_t W, float* p16,
                                          uint8_t* taps16, int64_t p0, int64_t p1);
  void (*relu_max_pool_2x2_backward_blocked16_f32)(const float* gp16, const float* p16,
                                                   const uint8_t* taps16, int64_t H, int64_t W,
                                                   float* gy16, int64_t p0, int64_t p1);
  // One plane x [H, W] of a 3x3, stride-1, padding-1 convolution with a single filter (a
  // depthwise channel): y [H, W], bias added and relu optional. Bit for bit
  // conv3x3_c1_rows_f32 with one output channel on x padded with zeros.
  void (*conv3x3_plane_f32)(const float* x, int64_t H, int64_t W, const float* w9, float bias,
                            bool relu, float* y);
  // Column sums in double: acc[j] += x[i * ld + j] for rows i = 0, 1, ... in order and
  // j in [0, n) (a sum over a leading axis, with the generic loop's order and bits).
  void (*add_rows_to_f64)(const float* x, int64_t rows, int64_t ld, int64_t n, double* acc);
  // Adam's update of elements [lo, hi) of p, m, v (and vmax with amsgrad) from g, with the
  // generic path's bits on every ISA (see adam_loop.inc).
  void (*adam_f32)(float* p, float* m, float* v, float* vmax, const float* g, int64_t lo,
                   int64_t hi, const AdamConstants<float>& k);
};

const SimdTable& simd();
// For tests and benchmarks: the table for a named ISA ("generic", "avx2", "avx512"),
// or null when the CPU lacks it.
const SimdTable* simd_for(const char* isa);

}  // namespace tessera::cpu
