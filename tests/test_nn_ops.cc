// Neural-network ops (tessera/ops/nn.h): every op against a direct float64 loop
// reference written here, on several shapes (size-1 dims, empty batches, non-contiguous
// views), finite-difference gradient checks of first and higher order, and the error
// messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "../src/kernels/cpu/simd.h"
#include "../src/ops/conv_pool_parts.h"
#include "tessera/ops/nn.h"
#include "test_util.h"

namespace tessera {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::gradcheck;
using testing::gradgradcheck;
using testing::random_tensor;
using Ints = std::vector<int64_t>;
constexpr DType kF64 = DType::Float64;
constexpr DType kF32 = DType::Float32;

// Row-major offset in a 5-d array.
int64_t at5(const int64_t* dims, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e) {
  return (((a * dims[1] + b) * dims[2] + c) * dims[3] + d) * dims[4] + e;
}

// ------------------------------------------------------------------ convolution references

struct ConvArgs {
  Ints stride, lo, hi, dil;  // per spatial dim; lo/hi = leading/trailing padding
  int64_t groups = 1;
};

ConvArgs symmetric(const Ints& stride, const Ints& pad, const Ints& dil, int64_t groups) {
  return {stride, pad, pad, dil, groups};
}

// PyTorch's convolution (cross-correlation) by direct loops, 1 to 3 spatial dims.
Tensor conv_ref(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  int D = static_cast<int>(x.dim()) - 2;
  std::vector<double> X = x.to_vector<double>(), Wt = w.to_vector<double>();
  std::vector<double> B = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t N = x.size(0), C = x.size(1), O = w.size(0), Cg = w.size(1), Og = O / a.groups;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  int64_t dl[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  Shape os{N, O};
  for (int d = 0; d < D; ++d) {
    int j = 3 - D + d;
    in[j] = x.size(2 + d);
    k[j] = w.size(2 + d);
    s[j] = a.stride[d];
    p[j] = a.lo[d];
    dl[j] = a.dil[d];
    out[j] = (in[j] + a.lo[d] + a.hi[d] - dl[j] * (k[j] - 1) - 1) / s[j] + 1;
    os.push_back(out[j]);
  }
  int64_t xd[5] = {N, C, in[0], in[1], in[2]}, wd[5] = {O, Cg, k[0], k[1], k[2]};
  int64_t yd[5] = {N, O, out[0], out[1], out[2]};
  std::vector<double> Y(shape_numel(os));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t z = 0; z < out[0]; ++z)
        for (int64_t y = 0; y < out[1]; ++y)
          for (int64_t q = 0; q < out[2]; ++q) {
            double acc = B.empty() ? 0.0 : B[o];
            int64_t g = o / Og;
            for (int64_t ic = 0; ic < Cg; ++ic)
              for (int64_t kz = 0; kz < k[0]; ++kz)
                for (int64_t ky = 0; ky < k[1]; ++ky)
                  for (int64_t kq = 0; kq < k[2]; ++kq) {
                    int64_t iz = z * s[0] - p[0] + kz * dl[0];
                    int64_t iy = y * s[1] - p[1] + ky * dl[1];
                    int64_t iq = q * s[2] - p[2] + kq * dl[2];
                    if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1] || iq < 0 || iq >= in[2])
                      continue;
                    acc += X[at5(xd, n, g * Cg + ic, iz, iy, iq)] * Wt[at5(wd, o, ic, kz, ky, kq)];
                  }
            Y[at5(yd, n, o, z, y, q)] = acc;
          }
  return from_vector(Y, os);
}

// PyTorch's transposed convolution by direct scatter loops; weight [Cin, Cout/G, k...].
Tensor conv_transpose_ref(const Tensor& x, const Tensor& w, const Tensor& b, const Ints& stride,
                          const Ints& pad, const Ints& out_pad, const Ints& dil, int64_t groups) {
  int D = static_cast<int>(x.dim()) - 2;
  std::vector<double> X = x.to_vector<double>(), Wt = w.to_vector<double>();
  std::vector<double> B = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t N = x.size(0), C = x.size(1), Og = w.size(1), O = Og * groups, Cg = C / groups;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  int64_t dl[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  Shape os{N, O};
  for (int d = 0; d < D; ++d) {
    int j = 3 - D + d;
    in[j] = x.size(2 + d);
    k[j] = w.size(2 + d);
    s[j] = stride[d];
    p[j] = pad[d];
    dl[j] = dil[d];
    out[j] = (in[j] - 1) * s[j] - 2 * p[j] + dl[j] * (k[j] - 1) + out_pad[d] + 1;
    os.push_back(out[j]);
  }
  int64_t xd[5] = {N, C, in[0], in[1], in[2]}, wd[5] = {C, Og, k[0], k[1], k[2]};
  int64_t yd[5] = {N, O, out[0], out[1], out[2]};
  std::vector<double> Y(shape_numel(os));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < out[0] * out[1] * out[2]; ++i)
        Y[(n * O + o) * out[0] * out[1] * out[2] + i] = B.empty() ? 0.0 : B[o];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t z = 0; z < in[0]; ++z)
        for (int64_t y = 0; y < in[1]; ++y)
          for (int64_t q = 0; q < in[2]; ++q)
            for (int64_t ol = 0; ol < Og; ++ol)
              for (int64_t kz = 0; kz < k[0]; ++kz)
                for (int64_t ky = 0; ky < k[1]; ++ky)
                  for (int64_t kq = 0; kq < k[2]; ++kq) {
                    int64_t oz = z * s[0] - p[0] + kz * dl[0];
                    int64_t oy = y * s[1] - p[1] + ky * dl[1];
                    int64_t oq = q * s[2] - p[2] + kq * dl[2];
                    if (oz < 0 || oz >= out[0] || oy < 0 || oy >= out[1] || oq < 0 || oq >= out[2])
                      continue;
                    Y[at5(yd, n, (c / Cg) * Og + ol, oz, oy, oq)] +=
                        X[at5(xd, n, c, z, y, q)] * Wt[at5(wd, c, ol, kz, ky, kq)];
                  }
  return from_vector(Y, os);
}

struct Conv2dCase {
  Shape x, w;
  Ints stride, pad, dil;
  int64_t groups;
  bool bias;
};

std::vector<Conv2dCase> conv2d_cases() {
  std::vector<Conv2dCase> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, false},  // all size 1
      {{3, 4, 9, 8}, {6, 2, 3, 2}, {2, 1}, {1, 0}, {1, 2}, 2, true},   // groups, dilation
      {{2, 4, 6, 5}, {4, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 4, true},   // depthwise
      {{2, 4, 6, 5}, {8, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 4, false},  // depthwise x2
      {{0, 3, 5, 5}, {2, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},   // empty batch
      {{2, 5, 4, 4}, {3, 5, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},   // pointwise
      {{1, 2, 10, 1}, {3, 2, 4, 1}, {3, 1}, {2, 0}, {2, 1}, 1, true},  // width 1
      {{2, 2, 3, 3}, {2, 2, 3, 3}, {1, 1}, {2, 2}, {1, 1}, 1, false},  // output > input
  };
  // A few random geometries.
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int i = 0; i < 6; ++i) {
    int64_t groups = pick(1, 2), cg = pick(1, 3), og = pick(1, 3);
    Ints k{pick(1, 3), pick(1, 3)}, s{pick(1, 2), pick(1, 2)}, d{pick(1, 2), pick(1, 2)};
    Ints p{pick(0, 2), pick(0, 2)};
    Shape xs{pick(1, 3), groups * cg, 0, 0};
    for (int j = 0; j < 2; ++j) {
      int64_t eff = d[j] * (k[j] - 1) + 1;
      xs[2 + j] = std::max<int64_t>(1, eff - 2 * p[j] + pick(0, 4));
    }
    cases.push_back({xs, {groups * og, cg, k[0], k[1]}, s, p, d, groups, pick(0, 1) == 1});
  }
  return cases;
}

TEST(Conv, Conv2dMatchesReference) {
  uint64_t seed = 1;
  for (const Conv2dCase& c : conv2d_cases()) {
    std::string what = "conv2d x " + to_string(c.x) + " w " + to_string(c.w);
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    Tensor w = random_tensor(c.w, kF64, -1, 1, seed++);
    Tensor b = c.bias ? random_tensor({c.w[0]}, kF64, -1, 1, seed++) : Tensor();
    Tensor expected = conv_ref(x, w, b, symmetric(c.stride, c.pad, c.dil, c.groups));
    expect_close(conv2d(x, w, b, c.stride, c.pad, c.dil, c.groups), expected, 1e-12, 1e-12,
                 what + " float64");
    Tensor bf = b.defined() ? b.to(kF32) : Tensor();
    expect_close(conv2d(x.to(kF32), w.to(kF32), bf, c.stride, c.pad, c.dil, c.groups), expected,
                 1e-4, 1e-5, what + " float32");
  }
}

TEST(Conv, Float32WinogradGeometriesMatchFloat64) {
  // 3x3 stride-1 convolutions with 16+ channels on each side run oneDNN's Winograd
  // kernels in float32 (forward, data and weight gradients); float64 runs the reference
  // im2col path. Winograd's transforms cost some precision, bounded here.
  for (Shape xs : {Shape{3, 16, 9, 7}, Shape{5, 32, 14, 14}}) {
    Tensor x = random_tensor(xs, kF64, -1, 1, 61);
    Tensor w = random_tensor({32, xs[1], 3, 3}, kF64, -1, 1, 62);
    Tensor b = random_tensor({32}, kF64, -1, 1, 63);
    Tensor r = random_tensor({xs[0], 32, xs[2], xs[3]}, kF64, -1, 1, 64);
    auto run = [&](DType dt) {
      Tensor xd = x.to(dt).set_requires_grad(), wd = w.to(dt).set_requires_grad();
      Tensor y = conv2d(xd, wd, b.to(dt), 1, 1);
      TensorList g = grad({sum(mul(y, r.to(dt)))}, {xd, wd});
      return std::vector<Tensor>{y, g[0], g[1]};
    };
    std::vector<Tensor> f64 = run(kF64), f32 = run(kF32);
    const char* names[] = {"output", "input gradient", "weight gradient"};
    for (int i = 0; i < 3; ++i) {
      // Entries sum up to 16*9 (output, input gradient) or N*H*W (weight gradient) terms.
      double scale = amax(abs(f64[i])).item<double>();
      expect_close(f32[i], f64[i], 1e-4, 2e-5 * scale, std::string(names[i]) + " " + to_string(xs));
    }
  }
}

TEST(Conv, Conv1dAndConv3dMatchReference) {
  struct Case {
    Shape x, w;
    Ints stride, pad, dil;
    int64_t groups;
  };
  std::vector<Case> cases = {
      {{2, 3, 9}, {4, 3, 3}, {2}, {1}, {1}, 1},
      {{1, 4, 7}, {4, 2, 2}, {1}, {0}, {3}, 2},
      {{3, 2, 1}, {2, 1, 1}, {1}, {0}, {1}, 2},
      {{0, 2, 5}, {3, 2, 3}, {1}, {1}, {1}, 1},
      {{2, 2, 4, 5, 3}, {3, 2, 2, 3, 1}, {1, 2, 1}, {1, 1, 0}, {1, 1, 1}, 1},
      {{1, 4, 3, 3, 3}, {4, 1, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 4},
      {{1, 2, 5, 4, 4}, {2, 2, 2, 2, 2}, {2, 1, 1}, {0, 1, 0}, {2, 1, 1}, 1},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    std::string what = "x " + to_string(c.x) + " w " + to_string(c.w);
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    Tensor w = random_tensor(c.w, kF64, -1, 1, seed++);
    Tensor b = random_tensor({c.w[0]}, kF64, -1, 1, seed++);
    Tensor expected = conv_ref(x, w, b, symmetric(c.stride, c.pad, c.dil, c.groups));
    Tensor y = c.x.size() == 3 ? conv1d(x, w, b, c.stride, c.pad, c.dil, c.groups)
                               : conv3d(x, w, b, c.stride, c.pad, c.dil, c.groups);
    expect_close(y, expected, 1e-12, 1e-12, what);
    Tensor yf = c.x.size() == 3
                    ? conv1d(x.to(kF32), w.to(kF32), b.to(kF32), c.stride, c.pad, c.dil, c.groups)
                    : conv3d(x.to(kF32), w.to(kF32), b.to(kF32), c.stride, c.pad, c.dil, c.groups);
    expect_close(yf, expected, 1e-4, 1e-5, what + " float32");
  }
}

TEST(Conv, SameAndValidPadding) {
  Tensor x = random_tensor({2, 2, 6, 5}, kF64, -1, 1, 3);
  for (Shape ws : {Shape{3, 2, 3, 3}, Shape{3, 2, 4, 2}, Shape{3, 2, 1, 5}}) {
    for (int64_t dil : {1, 2}) {
      Tensor w = random_tensor(ws, kF64, -1, 1, 4);
      Tensor y = conv2d(x, w, {}, 1, "same", dil);
      EXPECT_EQ(y.shape(), (Shape{2, 3, 6, 5}));
      // PyTorch puts the odd extra padding after.
      Ints lo, hi;
      for (int d = 0; d < 2; ++d) {
        int64_t total = dil * (ws[2 + d] - 1);
        lo.push_back(total / 2);
        hi.push_back(total - total / 2);
      }
      expect_close(y, conv_ref(x, w, {}, {{1, 1}, lo, hi, {dil, dil}, 1}), 1e-12, 1e-12,
                   "same " + to_string(ws));
    }
  }
  Tensor w = random_tensor({3, 2, 3, 2}, kF64, -1, 1, 5);
  expect_close(conv2d(x, w, {}, 2, "valid"),
               conv_ref(x, w, {}, symmetric({2, 2}, {0, 0}, {1, 1}, 1)), 1e-12, 1e-12, "valid");
  Tensor x1 = random_tensor({1, 2, 7}, kF64, -1, 1, 6),
         w1 = random_tensor({2, 2, 4}, kF64, -1, 1, 7);
  expect_close(conv1d(x1, w1, {}, 1, "same"), conv_ref(x1, w1, {}, {{1}, {1}, {2}, {1}, 1}), 1e-12,
               1e-12, "conv1d same");
}

TEST(Conv, NonContiguousInputs) {
  // A transposed input, a strided slice of a weight and a sliced bias.
  Tensor xt = random_tensor({2, 3, 6, 7}, kF64, -1, 1, 8).transpose(2, 3);
  Tensor wt = random_tensor({4, 3, 3, 6}, kF64, -1, 1, 9).slice(3, 0, 6, 2);
  Tensor bt = random_tensor({8}, kF64, -1, 1, 10).slice(0, 0, 8, 2);
  ASSERT_FALSE(xt.is_contiguous());
  ASSERT_FALSE(wt.is_contiguous());
  Tensor expected = conv_ref(xt, wt, bt, symmetric({2, 1}, {1, 1}, {1, 1}, 1));
  expect_close(conv2d(xt, wt, bt, {2, 1}, 1), expected, 1e-12, 1e-12, "conv2d");
  expect_close(conv2d(xt.to(kF32), wt.to(kF32), bt.to(kF32), {2, 1}, 1), expected, 1e-4, 1e-5,
               "conv2d float32");
  Tensor x1 = random_tensor({3, 2, 8}, kF64, -1, 1, 11).slice(0, 0, 3, 2);
  Tensor w1 = random_tensor({2, 2, 3}, kF64, -1, 1, 12);
  expect_close(conv_transpose1d(x1, w1, {}, 2),
               conv_transpose_ref(x1, w1, {}, {2}, {0}, {0}, {1}, 1), 1e-12, 1e-12,
               "conv_transpose1d");
}

TEST(Conv, HalfPrecisionComputesInFloat) {
  Tensor x = random_tensor({2, 3, 5, 5}, kF32, -1, 1, 13);
  Tensor w = random_tensor({4, 3, 3, 3}, kF32, -1, 1, 14);
  Tensor expected = conv2d(x, w, {}, 1, 1);
  for (DType t : {DType::Float16, DType::BFloat16}) {
    Tensor y = conv2d(x.to(t), w.to(t), {}, 1, 1);
    EXPECT_EQ(y.dtype(), t);
    expect_close(y, expected, 5e-2, 5e-2, dtype_name(t));
  }
}

TEST(Conv, ConvTransposeMatchesReference) {
  struct Case {
    Shape x, w;
    Ints stride, pad, out_pad, dil;
    int64_t groups;
  };
  std::vector<Case> cases = {
      {{2, 3, 4, 5}, {3, 2, 3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}, 1},
      {{1, 4, 3, 3}, {4, 1, 2, 3}, {1, 2}, {0, 1}, {0, 1}, {2, 1}, 2},
      {{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1},
      {{0, 2, 3, 3}, {2, 3, 3, 3}, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 1},
      {{2, 4, 3, 2}, {4, 1, 3, 3}, {3, 2}, {2, 1}, {2, 1}, {1, 1}, 4},  // depthwise
      {{2, 2, 5}, {2, 3, 3}, {2}, {1}, {1}, {1}, 1},
      {{1, 4, 4}, {4, 2, 2}, {3}, {0}, {0}, {2}, 2},
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    std::string what = "x " + to_string(c.x) + " w " + to_string(c.w);
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    Tensor w = random_tensor(c.w, kF64, -1, 1, seed++);
    Tensor b = random_tensor({c.w[1] * c.groups}, kF64, -1, 1, seed++);
    Tensor expected = conv_transpose_ref(x, w, b, c.stride, c.pad, c.out_pad, c.dil, c.groups);
    auto run = [&](DType t) {
      return c.x.size() == 3 ? conv_transpose1d(x.to(t), w.to(t), b.to(t), c.stride, c.pad,
                                                c.out_pad, c.groups, c.dil)
                             : conv_transpose2d(x.to(t), w.to(t), b.to(t), c.stride, c.pad,
                                                c.out_pad, c.groups, c.dil);
    };
    expect_close(run(kF64), expected, 1e-12, 1e-12, what);
    expect_close(run(kF32), expected, 1e-4, 1e-5, what + " float32");
  }
  Tensor x3 = random_tensor({1, 2, 2, 3, 2}, kF64, -1, 1, 250);
  Tensor w3 = random_tensor({2, 2, 2, 2, 3}, kF64, -1, 1, 251);
  expect_close(conv_transpose3d(x3, w3, {}, {2, 1, 2}, {0, 0, 1}, {1, 0, 0}),
               conv_transpose_ref(x3, w3, {}, {2, 1, 2}, {0, 0, 1}, {1, 0, 0}, {1, 1, 1}, 1), 1e-12,
               1e-12, "conv_transpose3d");
}

TEST(Conv, Gradients) {
  Tensor x = random_tensor({2, 2, 5, 4}, kF64, -1, 1, 20);
  Tensor w = random_tensor({4, 1, 3, 2}, kF64, -1, 1, 21);
  Tensor b = random_tensor({4}, kF64, -1, 1, 22);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], {2, 1}, {1, 0}, {1, 2}, 2);
      },
      {x, w, b}, 1e-6, 1e-6, 1e-5, "conv2d");
  gradcheck(
      [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], {}, 1, "same"); },
      {random_tensor({1, 2, 4, 3}, kF64, -1, 1, 23), random_tensor({2, 2, 2, 2}, kF64, -1, 1, 24)},
      1e-6, 1e-6, 1e-5, "conv2d same (asymmetric padding)");
  gradcheck([](const std::vector<Tensor>& in) { return conv1d(in[0], in[1], in[2], 2, 1); },
            {random_tensor({2, 3, 6}, kF64, -1, 1, 25), random_tensor({2, 3, 3}, kF64, -1, 1, 26),
             random_tensor({2}, kF64, -1, 1, 27)},
            1e-6, 1e-6, 1e-5, "conv1d");
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return conv3d(in[0], in[1], in[2], {1, 2, 1}, 1);
      },
      {random_tensor({1, 2, 3, 3, 3}, kF64, -1, 1, 28),
       random_tensor({2, 2, 2, 2, 2}, kF64, -1, 1, 29), random_tensor({2}, kF64, -1, 1, 30)},
      1e-6, 1e-6, 1e-5, "conv3d");
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return conv_transpose2d(in[0], in[1], in[2], 2, 1, {1, 0}, 2, {1, 2});
      },
      {random_tensor({1, 4, 3, 2}, kF64, -1, 1, 31), random_tensor({4, 1, 3, 2}, kF64, -1, 1, 32),
       random_tensor({2}, kF64, -1, 1, 33)},
      1e-6, 1e-6, 1e-5, "conv_transpose2d");
  gradcheck(
      [](const std::vector<Tensor>& in) { return conv_transpose1d(in[0], in[1], {}, 3, 1, 2); },
      {random_tensor({2, 2, 3}, kF64, -1, 1, 34), random_tensor({2, 2, 3}, kF64, -1, 1, 35)}, 1e-6,
      1e-6, 1e-5, "conv_transpose1d");
}

TEST(Conv, EveryAlgorithmAndLayoutMatchesFloat64) {
  // Graph plans time direct and Winograd kernels, in the plain layout and in oneDNN's
  // blocked one, and set "algorithm" and "layout"; every combination must agree.
  const OpDef* conv = find_op("conv2d");
  ASSERT_NE(conv, nullptr);
  for (Shape xs : {Shape{1, 3, 9, 7}, Shape{2, 16, 10, 10}, Shape{1, 32, 14, 14}}) {
    Tensor x = random_tensor(xs, kF64, -1, 1, 71);
    Tensor w = random_tensor({24, xs[1], 3, 3}, kF64, -1, 1, 72);
    Tensor b = random_tensor({24}, kF64, -1, 1, 73);
    Tensor want = conv2d(x, w, b, 1, 1);
    double scale = amax(abs(want)).item<double>();
    for (int64_t algorithm : {0, 1, 2}) {
      for (int64_t layout : {0, 1, 2}) {
        Attrs attrs{{"stride", std::vector<int64_t>{1, 1}},
                    {"padding", std::vector<int64_t>{1, 1}},
                    {"padding_hi", std::vector<int64_t>{1, 1}},
                    {"dilation", std::vector<int64_t>{1, 1}},
                    {"output_padding", std::vector<int64_t>{0, 0}},
                    {"groups", int64_t{1}},
                    {"algorithm", algorithm},
                    {"layout", layout}};
        Tensor got = run_op1(*conv, {x.to(kF32), w.to(kF32), b.to(kF32)}, attrs);
        expect_close(got, want, 1e-4, 2e-5 * scale,
                     str_cat(to_string(xs), " algorithm ", algorithm, " layout ", layout));
      }
    }
  }
}

TEST(Conv, CachedPlansTellEveryAttributeApart) {
  // Same input, weight and output shapes; only the width's padding and dilation differ
  // (the last fields of oneDNN's plan key). Each must run its own plan.
  Tensor x = random_tensor({2, 3, 6, 7}, kF64, -1, 1, 320);
  Tensor w = random_tensor({4, 3, 3, 3}, kF64, -1, 1, 321);
  for (int64_t d : {1, 2, 1}) {
    Ints pad{1, d}, dil{1, d};
    Tensor expected = conv_ref(x, w, {}, symmetric({1, 1}, pad, dil, 1));
    expect_close(conv2d(x.to(kF32), w.to(kF32), {}, 1, pad, dil), expected, 1e-4, 1e-5,
                 "width dilation " + std::to_string(d));
  }
}

TEST(Conv, FusedReluMatchesReluOfConv) {
  // Geometries for each kernel path: oneDNN with plain layouts (1 input channel), oneDNN
  // direct (strided), oneDNN Winograd (3x3 stride 1, 16+ channels) and, in float64, im2col.
  struct Case {
    Shape x, w;
    int64_t stride;
  };
  const Case cases[] = {{{4, 1, 9, 9}, {8, 1, 3, 3}, 1},
                        {{2, 6, 9, 8}, {5, 6, 3, 2}, 2},
                        {{3, 16, 8, 8}, {32, 16, 3, 3}, 1}};
  uint64_t seed = 300;
  for (const Case& c : cases) {
    std::string what = "conv2d_relu x " + to_string(c.x) + " w " + to_string(c.w);
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    Tensor w = random_tensor(c.w, kF64, -1, 1, seed++);
    Tensor b = random_tensor({c.w[0]}, kF64, -1, 1, seed++);
    for (DType dt : {kF64, kF32}) {
      std::string tag = what + (dt == kF64 ? " float64" : " float32");
      Tensor xd = x.to(dt).set_requires_grad(), wd = w.to(dt).set_requires_grad();
      Tensor bd = b.to(dt).set_requires_grad();
      Tensor fused = conv2d(xd, wd, bd, c.stride, 1, 1, 1, FusedActivation::relu);
      Tensor plain = relu(conv2d(xd, wd, bd, c.stride, 1));
      EXPECT_GT(sum(eq(fused, zeros_like(fused))).item<int64_t>(), 0)
          << tag << ": no output was clipped";
      EXPECT_GT(sum(gt(fused, zeros_like(fused))).item<int64_t>(), 0)
          << tag << ": every output was clipped";
      expect_close(fused, plain, dt == kF64 ? 1e-12 : 1e-5, dt == kF64 ? 1e-12 : 1e-5, tag);
      Tensor r = random_tensor(fused.shape(), dt, -1, 1, seed++);
      TensorList gf = grad({sum(mul(fused, r))}, {xd, wd, bd});
      TensorList gp = grad({sum(mul(plain, r))}, {xd, wd, bd});
      for (int i = 0; i < 3; ++i) {
        expect_close(gf[i], gp[i], dt == kF64 ? 1e-12 : 1e-5, dt == kF64 ? 1e-12 : 1e-5,
                     tag + " gradient " + std::to_string(i));
      }
    }
  }
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], 1, 1, 1, 1, FusedActivation::relu);
      },
      {random_tensor({2, 2, 4, 4}, kF64, -1, 1, 330), random_tensor({3, 2, 3, 3}, kF64, -1, 1, 331),
       random_tensor({3}, kF64, -1, 1, 332)},
      1e-6, 1e-6, 1e-5, "conv2d_relu");
  // 1-d: 1 * 1 - 2 = -1 everywhere, clipped to 0.
  expect_close(
      conv1d(ones({1, 1, 3}), ones({1, 1, 1}), full({1}, -2.0), 1, 0, 1, 1, FusedActivation::relu),
      zeros({1, 1, 3}), 0, 0, "conv1d_relu");
  expect_error(
      [] {
        conv2d(ones({1, 2, 3, 3}), ones({1, 3, 1, 1}), {}, 1, 0, 1, 1, FusedActivation::relu);
      },
      "conv2d_relu: input has 2 channels but weight expects 3");
}

// The first-layer kernels (1 input channel, 3x3, stride 1, padding 1) of every
// instruction set the CPU has, against float64 sums, on widths across the 16- and 32-lane
// blocks and their masked tails.
TEST(Conv, FirstLayerKernelsMatchReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("FirstLayerKernelsMatchReference: %s not available on this CPU\n", isa);
      continue;
    }
    for (int64_t W : {1, 5, 16, 17, 28, 33, 40}) {
      const int64_t N = 2, O = 3, H = 4, Wp = W + 2;
      std::vector<float> xpad(static_cast<size_t>(N * (H + 2) * Wp), 0.0f);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) xpad[(n * (H + 2) + h + 1) * Wp + w + 1] = u(rng);
      std::vector<float> w9(O * 9), bias(O), gy(N * O * H * W);
      for (float& v : w9) v = u(rng);
      for (float& v : bias) v = u(rng);
      for (float& v : gy) v = u(rng);
      auto ref = [&](int64_t n, int64_t o, int64_t h, int64_t w) {
        double acc = bias[o];
        for (int t = 0; t < 9; ++t)
          acc += double(w9[o * 9 + t]) * xpad[(n * (H + 2) + h + t / 3) * Wp + w + t % 3];
        return acc;
      };
      for (bool relu : {false, true}) {
        std::vector<float> y(N * O * H * W, NAN);
        for (int64_t n = 0; n < N; ++n) {
          table->conv3x3_c1_rows_f32(xpad.data() + n * (H + 2) * Wp, H, W, w9.data(), bias.data(),
                                     O, relu, y.data() + n * O * H * W, 0, H);
        }
        for (int64_t i = 0; i < N * O * H * W; ++i) {
          const int64_t n = i / (O * H * W), o = i / (H * W) % O, h = i / W % H, w = i % W;
          double want = ref(n, o, h, w);
          if (relu) want = std::max(want, 0.0);
          ASSERT_NEAR(y[i], want, 1e-5) << isa << " W=" << W << " relu=" << relu << " at " << i;
        }
      }
      // Weight and bias gradients, plain and through a relu whose output is relu_out.
      std::vector<float> relu_out(gy.size());
      for (float& v : relu_out) v = std::max(u(rng), 0.0f);  // about half are 0
      for (bool masked : {false, true}) {
        std::vector<float> gws(O * 9, NAN), gbs(O, NAN);
        table->conv3x3_c1_weight_grad_f32(xpad.data(), gy.data(),
                                          masked ? relu_out.data() : nullptr, N, O, H, W, 1, O,
                                          gws.data(), gbs.data());
        EXPECT_TRUE(std::isnan(gws[0]) && std::isnan(gbs[0])) << "channel 0 is outside [1, O)";
        for (int64_t o = 1; o < O; ++o) {
          auto g_at = [&](int64_t n, int64_t h, int64_t w) {
            const int64_t i = ((n * O + o) * H + h) * W + w;
            return masked && !(relu_out[i] > 0) ? 0.0 : double(gy[i]);
          };
          double want_b = 0;
          for (int t = 0; t < 9; ++t) {
            double want = 0;
            for (int64_t n = 0; n < N; ++n)
              for (int64_t h = 0; h < H; ++h)
                for (int64_t w = 0; w < W; ++w) {
                  want += g_at(n, h, w) * xpad[(n * (H + 2) + h + t / 3) * Wp + w + t % 3];
                  if (t == 0) want_b += g_at(n, h, w);
                }
            ASSERT_NEAR(gws[o * 9 + t], want, 1e-4)
                << isa << " W=" << W << " o=" << o << " tap " << t << " masked=" << masked;
          }
          ASSERT_NEAR(gbs[o], want_b, 1e-4) << isa << " W=" << W << " bias, masked=" << masked;
        }
      }
    }
  }
  // Through conv2d: float32 (own kernels) against float64 (im2col), values and weight and
  // bias gradients, and the same bits at 1 and 2 threads.
  Tensor x = random_tensor({5, 1, 13, 30}, kF64, -1, 1, 340);
  Tensor w = random_tensor({8, 1, 3, 3}, kF64, -1, 1, 341);
  Tensor b = random_tensor({8}, kF64, -1, 1, 342);
  Tensor r = random_tensor({5, 8, 13, 30}, kF64, -1, 1, 343);
  auto run = [&](DType dt) {
    Tensor wd = w.to(dt).set_requires_grad(), bd = b.to(dt).set_requires_grad();
    Tensor y = conv2d(x.to(dt), wd, bd, 1, 1);
    TensorList g = grad({sum(mul(y, r.to(dt)))}, {wd, bd});
    return std::vector<Tensor>{y, g[0], g[1]};
  };
  std::vector<Tensor> f64 = run(kF64);
  int threads = num_threads();
  set_num_threads(1);
  std::vector<Tensor> one = run(kF32);
  set_num_threads(2);
  std::vector<Tensor> two = run(kF32);
  set_num_threads(threads);
  for (int i = 0; i < 3; ++i) {
    expect_close(one[i], f64[i], 1e-4, 1e-4, "first layer " + std::to_string(i));
    expect_close(two[i], one[i], 0, 0, "first layer threads " + std::to_string(i));
  }
  // A conv3d of depth 1 with the same 3x3 kernel but depth padding is not a first layer:
  // its output has 3 depth slices, two of them bias only.
  Tensor x3 = random_tensor({2, 1, 1, 5, 6}, kF64, -1, 1, 344);
  Tensor w3 = random_tensor({3, 1, 1, 3, 3}, kF64, -1, 1, 345);
  Tensor b3 = random_tensor({3}, kF64, -1, 1, 346);
  expect_close(conv3d(x3.to(kF32), w3.to(kF32), b3.to(kF32), 1, 1), conv3d(x3, w3, b3, 1, 1), 1e-5,
               1e-5, "conv3d of depth 1 padded in depth");
  // With the relu fused and no gradient for x, backward runs conv2d_relu_first_layer_grad
  // (one pass, the mask applied on the fly); it must agree with relu_backward + the
  // separate weight and bias gradients, which create_graph (a differentiable graph) uses.
  Tensor w32 = w.to(kF32).set_requires_grad(), b32 = b.to(kF32).set_requires_grad();
  Tensor y = conv2d(x.to(kF32), w32, b32, 1, 1, 1, 1, FusedActivation::relu);
  Tensor loss = sum(mul(y, r.to(kF32)));
  TensorList fused = grad({loss}, {w32, b32}, {}, true);
  TensorList general = grad({loss}, {w32, b32}, {}, false, true);
  expect_close(fused[0], general[0], 1e-5, 1e-5, "fused first-layer weight gradient");
  expect_close(fused[1], general[1], 1e-5, 1e-5, "fused first-layer bias gradient");
  Tensor y64 = relu(conv2d(x, w, b, 1, 1));
  TensorList want = grad({sum(mul(y64, r))}, {w.set_requires_grad(), b.set_requires_grad()});
  expect_close(fused[0], want[0], 1e-4, 1e-4, "fused first-layer weight gradient vs float64");
  expect_close(fused[1], want[1], 1e-4, 1e-4, "fused first-layer bias gradient vs float64");
}

// The fused first layer (conv2d + relu + 2x2 max pooling) against the two ops: the weight
// gradient rebuilt from the pooled side of every instruction set gives the bits of the
// dense kernel on the scattered, masked gradient; through the op, values and gradients
// are those of max_pool2d(conv2d(..., relu), 2), bit for bit where the one-pass gradient
// runs, and at any thread count.
TEST(Conv, FusedFirstLayerReluMaxPoolMatchesTheTwoOps) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("FusedFirstLayerReluMaxPoolMatchesTheTwoOps: %s not available\n", isa);
      continue;
    }
    for (auto [H, W] : {std::pair<int64_t, int64_t>{2, 2}, {5, 7}, {4, 28}, {3, 33}, {6, 66}}) {
      const int64_t N = 2, O = 3, PH = H / 2, PW = W / 2, Wp = W + 2;
      std::vector<float> xpad(static_cast<size_t>(N * (H + 2) * Wp), 0.0f);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) xpad[(n * (H + 2) + h + 1) * Wp + w + 1] = u(rng);
      std::vector<float> gp(N * O * PH * PW), pooled(gp.size());
      std::vector<uint8_t> taps(gp.size());
      for (size_t i = 0; i < gp.size(); ++i) {
        gp[i] = u(rng);
        pooled[i] = std::max(u(rng), 0.0f);  // about half are 0: the relu masks them
        taps[i] = static_cast<uint8_t>(rng() % 4);
      }
      // The scattered gradient and a relu output that is the pooled value at each winner.
      std::vector<float> gy(N * O * H * W, 0.0f), relu_out(gy.size(), 0.0f);
      for (int64_t i = 0; i < N * O * PH * PW; ++i) {
        const int64_t plane = i / (PH * PW), ph = i / PW % PH, pw = i % PW;
        const int64_t at = (plane * H + 2 * ph + taps[i] / 2) * W + 2 * pw + taps[i] % 2;
        gy[at] = gp[i];
        relu_out[at] = pooled[i];
      }
      std::vector<float> dense_w(O * 9), dense_b(O), pooled_w(O * 9), pooled_b(O);
      table->conv3x3_c1_weight_grad_f32(xpad.data(), gy.data(), relu_out.data(), N, O, H, W, 0, O,
                                        dense_w.data(), dense_b.data());
      table->conv3x3_c1_pooled_weight_grad_f32(xpad.data(), gp.data(), pooled.data(), taps.data(),
                                               N, O, H, W, 0, O, pooled_w.data(), pooled_b.data());
      for (int64_t i = 0; i < O * 9; ++i) {
        ASSERT_EQ(pooled_w[i], dense_w[i]) << isa << " H=" << H << " W=" << W << " at " << i;
      }
      for (int64_t o = 0; o < O; ++o) {
        ASSERT_EQ(pooled_b[o], dense_b[o]) << isa << " H=" << H << " W=" << W << " bias " << o;
      }
    }
  }
  // Through the op, with and without a bias, odd sizes and an empty batch included.
  struct Case {
    Shape x;
    bool bias;
  };
  uint64_t seed = 350;
  for (const Case& c : {Case{{4, 1, 28, 28}, true}, Case{{3, 1, 7, 9}, true},
                        Case{{2, 1, 2, 34}, false}, Case{{0, 1, 6, 6}, true}}) {
    Tensor x = random_tensor(c.x, kF32, -1, 1, seed++);
    Tensor w = random_tensor({5, 1, 3, 3}, kF32, -1, 1, seed++);
    Tensor b = c.bias ? random_tensor({5}, kF32, -1, 1, seed++) : Tensor();
    Tensor r = random_tensor({c.x[0], 5, c.x[2] / 2, c.x[3] / 2}, kF32, -1, 1, seed++);
    const std::string name = "fused first layer " + to_string(c.x);
    // gradients of sum(pooled * r) for (w, b) and, with x_grad, (x, w, b)
    auto run = [&](bool fused, bool x_grad) {
      Tensor xv = x.detach(), wv = w.detach().set_requires_grad();
      Tensor bv = c.bias ? b.detach().set_requires_grad() : Tensor();
      if (x_grad) xv.set_requires_grad();
      Tensor p = fused ? conv2d_relu_max_pool2d(xv, wv, bv)
                       : max_pool2d(conv2d(xv, wv, bv, 1, 1, 1, 1, FusedActivation::relu), 2);
      TensorList wrt{wv};
      if (c.bias) wrt.push_back(bv);
      if (x_grad) wrt.push_back(xv);
      TensorList out{p};
      for (const Tensor& g : grad({sum(mul(p, r))}, wrt)) out.push_back(g);
      return out;
    };
    TensorList want = run(false, false), got = run(true, false);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      expect_close(got[i], want[i], 0, 0, name + " output " + std::to_string(i));
    }
    TensorList want_x = run(false, true), got_x = run(true, true);
    for (size_t i = 0; i < got_x.size(); ++i) {
      expect_close(got_x[i], want_x[i], 1e-6, 1e-6, name + " with dx, " + std::to_string(i));
    }
    int threads = num_threads();
    set_num_threads(1);
    TensorList one = run(true, false);
    set_num_threads(threads);
    for (size_t i = 0; i < got.size(); ++i) {
      expect_close(one[i], got[i], 0, 0, name + " at 1 thread, " + std::to_string(i));
    }
  }
  // Second order (the gradient rule in ops): d/dx of |dL/dw|^2 matches the two ops.
  Tensor x = random_tensor({2, 1, 6, 8}, kF32, -1, 1, 360);
  Tensor w = random_tensor({3, 1, 3, 3}, kF32, -1, 1, 361);
  Tensor b = random_tensor({3}, kF32, -1, 1, 362);
  Tensor r = random_tensor({2, 3, 3, 4}, kF32, -1, 1, 363);
  auto second = [&](bool fused) {
    Tensor xv = x.detach().set_requires_grad(), wv = w.detach().set_requires_grad();
    Tensor p = fused ? conv2d_relu_max_pool2d(xv, wv, b)
                     : max_pool2d(conv2d(xv, wv, b, 1, 1, 1, 1, FusedActivation::relu), 2);
    Tensor gw = grad({sum(mul(p, r))}, {wv}, {}, false, true)[0];
    return grad({sum(mul(gw, gw))}, {xv})[0];
  };
  expect_close(second(true), second(false), 1e-5, 1e-5, "fused first layer, second order");
  // Other shapes run the two ops.
  Tensor x2 = random_tensor({2, 2, 6, 6}, kF32, -1, 1, 364);
  Tensor w2 = random_tensor({3, 2, 3, 3}, kF32, -1, 1, 365);
  expect_close(conv2d_relu_max_pool2d(x2, w2),
               max_pool2d(conv2d(x2, w2, {}, 1, 1, 1, 1, FusedActivation::relu), 2), 0, 0,
               "two input channels");
  expect_error([&] { conv2d_relu_max_pool2d(x, w, random_tensor({4}, kF32, -1, 1, 366)); },
               "conv2d_relu_max_pool2d_2x2: bias must be float32 [3], got float32 [4]");
}

// conv2d_relu_max_pool2d with several input channels: oneDNN's blocked-layout path (the
// output pooled and its gradient scattered in that layout) where oneDNN picks the layout,
// the two ops' kernels otherwise. Outputs, gx and gw are the two ops' bits; gb sums the
// pooled side in another order.
TEST(Conv, FusedReluMaxPoolMatchesTheTwoOpsForAnyChannels) {
  uint64_t seed = 380;
  for (auto [xs, O] : {std::pair<Shape, int64_t>{{6, 32, 14, 14}, 64},
                       {{5, 24, 9, 11}, 40},
                       {{3, 16, 8, 8}, 5},
                       {{2, 3, 7, 6}, 8}}) {
    Tensor x = random_tensor(xs, kF32, -1, 1, seed++);
    Tensor w = random_tensor({O, xs[1], 3, 3}, kF32, -0.2, 0.2, seed++);
    Tensor b = random_tensor({O}, kF32, -0.1, 0.1, seed++);
    Tensor r = random_tensor({xs[0], O, xs[2] / 2, xs[3] / 2}, kF32, -1, 1, seed++);
    auto run = [&](bool fused, bool x_grad = true) {
      Tensor xv = x.detach(), wv = w.detach().set_requires_grad();
      Tensor bv = b.detach().set_requires_grad();
      if (x_grad) xv.set_requires_grad();
      Tensor p = fused ? conv2d_relu_max_pool2d(xv, wv, bv)
                       : max_pool2d(conv2d(xv, wv, bv, 1, 1, 1, 1, FusedActivation::relu), 2);
      TensorList out{p};
      if (!x_grad) out.push_back(Tensor());  // no gx: the backward skips it
      TensorList wrt = x_grad ? TensorList{xv, wv, bv} : TensorList{wv, bv};
      for (const Tensor& g : grad({sum(mul(p, r))}, wrt)) out.push_back(g);
      return out;
    };
    TensorList want = run(false), got = run(true);
    const std::string name = "fused conv " + to_string(xs) + " to " + std::to_string(O);
    expect_close(got[0], want[0], 0, 0, name + " pooled");
    expect_close(got[1], want[1], 0, 0, name + " gx");
    expect_close(got[2], want[2], 0, 0, name + " gw");
    expect_close(got[3], want[3], 1e-5, 1e-6, name + " gb");
    TensorList got_w = run(true, false);
    expect_close(got_w[2], want[2], 0, 0, name + " gw without gx");
    expect_close(got_w[3], want[3], 1e-5, 1e-6, name + " gb without gx");
    int threads = num_threads();
    set_num_threads(1);
    TensorList one = run(true);
    set_num_threads(threads);
    for (size_t i = 0; i < 3; ++i) {
      expect_close(one[i], got[i], 0, 0, name + " at 1 thread, " + std::to_string(i));
    }
  }
}

// The blocked-layout pooling and its gradient of every instruction set against a scalar
// reference: ties and all-negative windows (relu's zeros) included, odd sizes too.
TEST(Conv, BlockedReluMaxPoolKernelsMatchReference) {
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> level(-2, 2);  // few distinct values: many ties
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("BlockedReluMaxPoolKernelsMatchReference: %s not available\n", isa);
      continue;
    }
    for (auto [H, W] : {std::pair<int64_t, int64_t>{2, 2}, {5, 7}, {6, 4}}) {
      const int64_t planes = 3, PH = H / 2, PW = W / 2;
      std::vector<float> y(planes * H * W * 16), gp(planes * PH * PW * 16);
      for (float& v : y) v = 0.5f * level(rng);
      for (float& v : gp) v = 0.25f * level(rng) + 0.1f;
      std::vector<float> p(gp.size(), NAN), gy(y.size(), NAN);
      std::vector<uint8_t> taps(gp.size(), 9);
      table->relu_max_pool_2x2_blocked16_f32(y.data(), H, W, p.data(), taps.data(), 0, planes);
      table->relu_max_pool_2x2_backward_blocked16_f32(gp.data(), p.data(), taps.data(), H, W,
                                                      gy.data(), 0, planes);
      std::vector<float> want_gy(y.size(), 0.0f);
      for (int64_t i = 0; i < planes * PH * PW * 16; ++i) {
        const int64_t c = i % 16, pw = i / 16 % PW, ph = i / (16 * PW) % PH,
                      pl = i / (16 * PW * PH);
        float m = -1;
        int t = -1;
        for (int k = 0; k < 4; ++k) {
          const float v =
              std::max(y[((pl * H + 2 * ph + k / 2) * W + 2 * pw + k % 2) * 16 + c], 0.0f);
          if (v > m) m = v, t = k;
        }
        ASSERT_EQ(p[i], m) << isa << " H=" << H << " W=" << W << " at " << i;
        ASSERT_EQ(taps[i], t) << isa << " H=" << H << " W=" << W << " at " << i;
        if (m > 0) want_gy[((pl * H + 2 * ph + t / 2) * W + 2 * pw + t % 2) * 16 + c] = gp[i];
      }
      for (size_t i = 0; i < gy.size(); ++i) {
        ASSERT_EQ(gy[i], want_gy[i]) << isa << " gradient, H=" << H << " W=" << W << " at " << i;
      }
    }
  }
}

// conv2d's backward converts gy to oneDNN's blocked layout once for the data gradient and
// every batch chunk of the weight gradient (cpu::SharedConvInput): the gradients are those
// of separate backward passes, bit for bit, with channels that fill 16-wide blocks or not
// and batches that the 4 chunks split unevenly.
TEST(Conv, BackwardSharesTheBlockedOutputGradient) {
  uint64_t seed = 370;
  for (Shape xs : {Shape{6, 32, 14, 14}, Shape{5, 24, 9, 11}, Shape{1, 16, 8, 8}}) {
    Tensor x = random_tensor(xs, kF32, -1, 1, seed++);
    Tensor w = random_tensor({40, xs[1], 3, 3}, kF32, -0.1, 0.1, seed++);
    Tensor r = random_tensor({xs[0], 40, xs[2], xs[3]}, kF32, -1, 1, seed++);
    auto grads = [&](bool gx, bool gw) {
      Tensor xv = x.detach(), wv = w.detach();
      if (gx) xv.set_requires_grad();
      if (gw) wv.set_requires_grad();
      TensorList wrt;
      if (gx) wrt.push_back(xv);
      if (gw) wrt.push_back(wv);
      return grad({sum(mul(conv2d(xv, wv, {}, 1, 1), r))}, wrt);
    };
    TensorList both = grads(true, true);
    const std::string what = "conv2d backward " + to_string(xs);
    expect_close(both[0], grads(true, false)[0], 0, 0, what + " data gradient");
    expect_close(both[1], grads(false, true)[0], 0, 0, what + " weight gradient");
  }
}

TEST(Conv, SecondOrderGradients) {
  Tensor x = random_tensor({2, 2, 4, 4}, kF64, -1, 1, 40);
  Tensor w = random_tensor({2, 1, 2, 3}, kF64, -1, 1, 41);
  Tensor b = random_tensor({2}, kF64, -1, 1, 42);
  gradgradcheck(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], {2, 1}, 1, 1, 2);
      },
      {x, w, b}, 1e-6, 1e-5, 1e-4, "conv2d");
  gradgradcheck(
      [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], {}, 1, "same", 2); },
      {random_tensor({1, 1, 4, 3}, kF64, -1, 1, 43), random_tensor({2, 1, 2, 2}, kF64, -1, 1, 44)},
      1e-6, 1e-5, 1e-4, "conv2d same dilated");
  gradgradcheck(
      [](const std::vector<Tensor>& in) { return conv_transpose2d(in[0], in[1], {}, 2, 1, 1); },
      {random_tensor({1, 2, 2, 3}, kF64, -1, 1, 45), random_tensor({2, 1, 3, 3}, kF64, -1, 1, 46)},
      1e-6, 1e-5, 1e-4, "conv_transpose2d");
}

TEST(Conv, GradientOnlyForRequestedInputs) {
  // The input needs no gradient here (like a network's first layer), the weight does.
  Tensor x = random_tensor({2, 3, 5, 5}, kF64, -1, 1, 47);
  Tensor w = random_tensor({2, 3, 3, 3}, kF64, -1, 1, 48).set_requires_grad();
  Tensor y = conv2d(x, w, {}, 1, 1);
  TensorList g = grad({sum(y)}, {w});
  // d sum(y) / dw[o, c, i, j] = sum of the input window shifted by (i, j).
  Tensor expected = conv_ref(x.transpose(0, 1), ones({2, 2, 5, 5}, kF64).transpose(0, 1), {},
                             symmetric({1, 1}, {1, 1}, {1, 1}, 1))
                        .transpose(0, 1);
  expect_close(g[0], expected, 1e-12, 1e-12, "weight gradient");
}

// Depthwise 3x3, stride 1, padding 1 in float32 runs Tessera's plane kernels on NCHW
// (src/kernels/cpu/conv_depthwise.cc): output, input and weight gradients against float64
// (the reference im2col path) on planes across the 16- and 32-lane blocks and the 4-row
// steps, with relu, without bias, on an empty batch, and independent of the thread count.
TEST(Conv, DepthwiseThreeByThreeMatchesFloat64) {
  uint64_t seed = 70;
  for (Shape xs : {Shape{2, 3, 1, 1}, Shape{1, 2, 2, 3}, Shape{3, 4, 5, 17}, Shape{1, 3, 9, 33},
                   Shape{2, 2, 7, 40}, Shape{0, 3, 4, 4}, Shape{1, 32, 112, 112}}) {
    const int64_t C = xs[1];
    Tensor x = random_tensor(xs, kF64, -1, 1, seed++);
    Tensor w = random_tensor({C, 1, 3, 3}, kF64, -1, 1, seed++);
    Tensor b = random_tensor({C}, kF64, -1, 1, seed++);
    Tensor r = random_tensor(xs, kF64, -1, 1, seed++);
    for (bool relu : {false, true}) {
      for (bool bias : {false, true}) {
        auto run = [&](DType dt) {
          Tensor xd = x.to(dt).set_requires_grad(), wd = w.to(dt).set_requires_grad();
          Tensor y = conv2d(xd, wd, bias ? b.to(dt) : Tensor(), 1, 1, 1, C,
                            relu ? FusedActivation::relu : FusedActivation::none);
          TensorList g = grad({sum(mul(y, r.to(dt)))}, {xd, wd});
          return std::vector<Tensor>{y, g[0], g[1]};
        };
        std::vector<Tensor> f64 = run(kF64), f32 = run(kF32);
        int threads = num_threads();
        set_num_threads(1);
        std::vector<Tensor> one = run(kF32);
        set_num_threads(threads);
        const char* names[] = {"output", "input gradient", "weight gradient"};
        for (int i = 0; i < 3; ++i) {
          std::string what = std::string(names[i]) + " " + to_string(xs) + (relu ? " relu" : "") +
                             (bias ? " bias" : "");
          double scale = f64[i].numel() ? amax(abs(f64[i])).item<double>() : 1.0;
          expect_close(f32[i], f64[i], 1e-4, 1e-5 * scale, what);
          expect_close(one[i], f32[i], 0, 0, what + " at 1 thread");
        }
      }
    }
  }
}

// The depthwise plane kernel of every ISA gives the first-layer row kernel's bits on the
// plane padded with zeros (one output channel).
TEST(Conv, DepthwisePlaneKernelMatchesTheRowKernel) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("DepthwisePlaneKernelMatchesTheRowKernel: %s not available on this CPU\n", isa);
      continue;
    }
    for (auto [H, W] :
         {std::pair<int64_t, int64_t>{1, 1}, {3, 16}, {5, 17}, {8, 32}, {6, 33}, {9, 50}}) {
      std::vector<float> x(H * W), xpad((H + 2) * (W + 2), 0.0f), w9(9), y(H * W), want(H * W);
      for (float& v : x) v = u(rng);
      for (float& v : w9) v = u(rng);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < W; ++c) xpad[(h + 1) * (W + 2) + c + 1] = x[h * W + c];
      for (bool relu : {false, true}) {
        const float bias = 0.25f;
        table->conv3x3_plane_f32(x.data(), H, W, w9.data(), bias, relu, y.data());
        table->conv3x3_c1_rows_f32(xpad.data(), H, W, w9.data(), &bias, 1, relu, want.data(), 0, H);
        EXPECT_EQ(y, want) << isa << " " << H << "x" << W << (relu ? " relu" : "");
      }
    }
  }
}

TEST(Conv, ResultsDoNotDependOnThreadCount) {
  Tensor x = random_tensor({5, 4, 9, 8}, kF32, -1, 1, 49).set_requires_grad();
  Tensor w = random_tensor({6, 2, 3, 3}, kF32, -1, 1, 50).set_requires_grad();
  Tensor gy = random_tensor({5, 6, 5, 8}, kF32, -1, 1, 51);
  auto run = [&] {
    Tensor y = conv2d(x, w, {}, {2, 1}, 1, 1, 2);
    TensorList g = grad({y}, {x, w}, {gy});
    return std::vector<Tensor>{y, g[0], g[1]};
  };
  int threads = num_threads();
  set_num_threads(1);
  std::vector<Tensor> one = run();
  set_num_threads(std::max(threads, 2));
  std::vector<Tensor> many = run();
  set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i)
    expect_close(many[i], one[i], 0, 0, "output " + std::to_string(i));
}

TEST(Conv, LargeFloat32ResultsDoNotDependOnThreadCount) {
  // Large enough that oneDNN would split the weight gradient's batch sum across threads.
  Tensor x = random_tensor({16, 32, 28, 28}, kF32, -1, 1, 52).set_requires_grad();
  Tensor w = random_tensor({64, 32, 3, 3}, kF32, -1, 1, 53).set_requires_grad();
  Tensor b = random_tensor({64}, kF32, -1, 1, 54).set_requires_grad();
  auto run = [&] {
    Tensor y = conv2d(x, w, b, 1, 1);
    TensorList g = grad({sum(mul(y, y))}, {x, w, b});
    return std::vector<Tensor>{y, g[0], g[1], g[2]};
  };
  int threads = num_threads();
  set_num_threads(1);
  std::vector<Tensor> one = run();
  set_num_threads(2);
  std::vector<Tensor> two = run();
  set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) {
    expect_close(two[i], one[i], 0, 0, "output " + std::to_string(i));
  }
}

TEST(Conv, EmptyBatchFloat32WeightGradientIsZero) {
  Tensor x = zeros({0, 3, 5, 5});
  Tensor w = ones({4, 3, 3, 3}).set_requires_grad();
  Tensor b = ones({4}).set_requires_grad();
  Tensor y = conv2d(x, w, b, 1, 1);
  EXPECT_EQ(y.shape(), Shape({0, 4, 5, 5}));
  sum(y).backward();
  expect_close(w.grad(), zeros({4, 3, 3, 3}), 0, 0, "weight gradient");
  expect_close(b.grad(), zeros({4}), 0, 0, "bias gradient");
}

TEST(Conv, Errors) {
  Tensor x = zeros({1, 3, 8, 8});
  expect_error(
      [&] {
        conv2d(x, zeros({8, 4, 3, 3}));
      },
      "conv2d: input has 3 channels but weight expects 4 (input [1,3,8,8], weight "
      "[8,4,3,3], groups 1)");
  expect_error(
      [&] {
        conv2d(zeros({1, 1, 2, 2}), zeros({1, 1, 5, 5}), {}, 1, 1);
      },
      "conv2d: kernel size 5 is bigger than the padded input size 4 in spatial dimension "
      "0 (input [1,1,2,2], weight [1,1,5,5], padding [1,1])");
  expect_error(
      [&] {
        conv1d(zeros({1, 1, 3}), zeros({1, 1, 2}), {}, 1, 0, 3);
      },
      "conv1d: kernel size 2 (dilated to 4) is bigger than the padded input size 3");
  expect_error(
      [&] {
        conv2d(zeros({1, 4, 5, 5}), zeros({6, 2, 3, 3}), {}, 1, 0, 1, 4);
      },
      "conv2d: weight has 6 output channels, which groups 4 does not divide");
  expect_error(
      [&] {
        conv2d(zeros({1, 3, 8}), zeros({2, 3, 3, 3}));
      },
      "conv2d: expects a 4-d input [N, C, H, W], got shape [1,3,8]");
  expect_error([&] { conv2d(x, zeros({2, 3, 3})); }, "conv2d: expects a 4-d weight");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), zeros({3}));
      },
      "conv2d: bias must have shape [2], got [3]");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}, kF64));
      },
      "conv2d: input and weight must have the same dtype, got float32 and float64");
  expect_error(
      [&] {
        conv2d(zeros({1, 3, 8, 8}, DType::Int32), zeros({2, 3, 3, 3}, DType::Int32));
      },
      "conv2d: expects a floating-point input, got int32");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), {}, 2, "same");
      },
      "conv2d: padding='same' is not supported for strided convolutions (stride [2,2])");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), {}, 1, "full");
      },
      "conv2d: padding must be numbers, \"same\" or \"valid\", got \"full\"");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), {}, {1, 2, 3});
      },
      "conv2d: stride needs 1 or 2 values, got 3");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), {}, 0);
      },
      "conv2d: stride must be positive, got [0,0]");
  expect_error(
      [&] {
        conv2d(x, zeros({2, 3, 3, 3}), {}, 1, -1);
      },
      "conv2d: padding must be non-negative, got [-1,-1]");
  expect_error(
      [&] {
        conv_transpose2d(zeros({1, 2, 3, 3}), zeros({3, 2, 3, 3}));
      },
      "conv_transpose2d: input has 2 channels but weight expects 3 (input [1,2,3,3], "
      "weight [3,2,3,3], groups 1)");
  expect_error(
      [&] {
        conv_transpose2d(zeros({1, 2, 3, 3}), zeros({2, 2, 3, 3}), {}, 2, 0, 2);
      },
      "conv_transpose2d: output_padding 2 must be non-negative and smaller than either "
      "stride 2 or dilation 1");
  expect_error(
      [&] {
        conv_transpose1d(zeros({1, 2, 1}), zeros({2, 2, 1}), {}, 1, 1);
      },
      "conv_transpose1d: output size would be -1 in spatial dimension 0");
}

// ------------------------------------------------------------------ pooling references

struct PoolResult {
  Tensor values, indices;
};

int64_t pool_out_size(int64_t L, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  int64_t num = L + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
  if (ceil_mode && (out - 1) * s >= L + p) --out;
  return out;
}

// PyTorch's max_pool2d by direct loops: first maximum wins, a NaN wins.
PoolResult max_pool2d_ref(const Tensor& x, Ints k, Ints s, Ints p, Ints d, bool ceil_mode) {
  std::vector<double> X = x.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t OH = pool_out_size(H, k[0], s[0], p[0], d[0], ceil_mode);
  int64_t OW = pool_out_size(W, k[1], s[1], p[1], d[1], ceil_mode);
  std::vector<double> V;
  std::vector<int64_t> I;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double best = 0;
        int64_t bi = -1;
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            int64_t h = oh * s[0] - p[0] + i * d[0], w = ow * s[1] - p[1] + j * d[1];
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            double v = X[pl * H * W + h * W + w];
            if (bi < 0 || v > best || std::isnan(v)) best = v, bi = h * W + w;
          }
        V.push_back(best);
        I.push_back(bi);
      }
  return {from_vector(V, {N, C, OH, OW}), from_vector(I, {N, C, OH, OW})};
}

// PyTorch's avg_pool2d by direct loops.
Tensor avg_pool2d_ref(const Tensor& x, Ints k, Ints s, Ints p, bool ceil_mode, bool include_pad) {
  std::vector<double> X = x.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t OH = pool_out_size(H, k[0], s[0], p[0], 1, ceil_mode);
  int64_t OW = pool_out_size(W, k[1], s[1], p[1], 1, ceil_mode);
  std::vector<double> V;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = oh * s[0] - p[0], w0 = ow * s[1] - p[1];
        int64_t h1 = std::min(h0 + k[0], H + p[0]), w1 = std::min(w0 + k[1], W + p[1]);
        int64_t pool_size = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, H), w1 = std::min(w1, W);
        double total = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) total += X[pl * H * W + h * W + w];
        V.push_back(total / static_cast<double>(include_pad ? pool_size : (h1 - h0) * (w1 - w0)));
      }
  return from_vector(V, {N, C, OH, OW});
}

// Adaptive pooling by direct loops; max also returns indices.
PoolResult adaptive_pool2d_ref(const Tensor& x, int64_t OH, int64_t OW, bool is_max) {
  std::vector<double> X = x.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> V;
  std::vector<int64_t> I;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
        double total = 0, best = 0;
        int64_t bi = -1;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            double v = X[pl * H * W + h * W + w];
            total += v;
            if (bi < 0 || v > best || std::isnan(v)) best = v, bi = h * W + w;
          }
        V.push_back(is_max ? best : total / static_cast<double>((h1 - h0) * (w1 - w0)));
        I.push_back(bi);
      }
  return {from_vector(V, {N, C, OH, OW}), from_vector(I, {N, C, OH, OW})};
}

// Checks the op's backward through its own gradient: v -> d<op(x), v>/dx is the backward
// op; gradcheck on it differentiates that op (what double backward runs). With `third`,
// also u -> d<backward(v), u>/dv (the gradient of the backward's gradient).
void check_backward_op(const std::function<Tensor(const Tensor&)>& op, const Tensor& x0,
                       const std::string& what, bool third = false) {
  Tensor x = x0.to(kF64).detach().set_requires_grad();
  Tensor probe = op(x);
  auto backward = [&](const Tensor& v) {
    return grad({sum(mul(op(x), v))}, {x}, {}, true, true)[0];
  };
  gradcheck([&](const std::vector<Tensor>& in) { return backward(in[0]); },
            {random_tensor(probe.shape(), kF64, -1, 1, 5)}, 1e-6, 1e-6, 1e-5, what + " backward");
  if (!third) return;
  Tensor v = random_tensor(probe.shape(), kF64, -1, 1, 6).set_requires_grad();
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return grad({sum(mul(backward(v), in[0]))}, {v}, {}, true, true)[0];
      },
      {random_tensor(x.shape(), kF64, -1, 1, 7)}, 1e-6, 1e-6, 1e-5, what + " third order");
}

TEST(Pool, MaxPool2dMatchesReference) {
  struct Case {
    Shape x;
    Ints k, s, p, d;
    bool ceil_mode;
  };
  std::vector<Case> cases = {
      {{2, 3, 6, 7}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},
      {{1, 2, 7, 5}, {3, 2}, {2, 1}, {1, 1}, {1, 1}, true},
      {{2, 1, 8, 8}, {3, 3}, {3, 2}, {1, 0}, {2, 1}, false},
      {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0}, {1, 1}, false},
      {{0, 3, 4, 4}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},
      {{3, 2, 5, 1}, {2, 1}, {2, 1}, {1, 0}, {1, 1}, true},
      {{1, 2, 5, 5}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true},
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    std::string what = "max_pool2d " + to_string(c.x);
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    PoolResult r = max_pool2d_ref(x, c.k, c.s, c.p, c.d, c.ceil_mode);
    for (DType t : {kF64, kF32, DType::Int64}) {
      Tensor xt = t == DType::Int64 ? random_tensor(c.x, t, -9, 9, seed) : x.to(t);
      PoolResult rt = t == DType::Int64 ? max_pool2d_ref(xt, c.k, c.s, c.p, c.d, c.ceil_mode) : r;
      auto [v, i] = max_pool2d_with_indices(xt, c.k, c.s, c.p, c.d, c.ceil_mode);
      EXPECT_EQ(v.dtype(), t);
      EXPECT_EQ(i.dtype(), DType::Int64);
      expect_close(v, rt.values, 1e-6, 0, what);
      if (t != DType::Int64) expect_close(i, rt.indices, 0, 0, what + " indices");
    }
  }
  // Stride defaults to the kernel size.
  Tensor x = random_tensor({1, 2, 6, 6}, kF64, -1, 1, 350);
  expect_close(max_pool2d(x, 3), max_pool2d_ref(x, {3, 3}, {3, 3}, {0, 0}, {1, 1}, false).values, 0,
               0, "default stride");
}

TEST(Pool, MaxPool1dAndNonContiguous) {
  Tensor x = random_tensor({2, 3, 9}, kF64, -1, 1, 360);
  auto [v, i] = max_pool1d_with_indices(x, 3, 2, 1, 1, true);
  PoolResult r = max_pool2d_ref(x.unsqueeze(2), {1, 3}, {1, 2}, {0, 1}, {1, 1}, true);
  expect_close(v, r.values.squeeze(2), 0, 0, "max_pool1d");
  expect_close(i, r.indices.squeeze(2), 0, 0, "max_pool1d indices");
  expect_close(
      max_pool1d(x, 2, 1, 0, 3),
      max_pool2d_ref(x.unsqueeze(2), {1, 2}, {1, 1}, {0, 0}, {1, 3}, false).values.squeeze(2), 0, 0,
      "max_pool1d dilated");
  Tensor xt = random_tensor({2, 2, 7, 6}, kF64, -1, 1, 361).transpose(2, 3);
  auto [vt, it] = max_pool2d_with_indices(xt, 2, 2);
  PoolResult rt = max_pool2d_ref(xt, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false);
  expect_close(vt, rt.values, 0, 0, "transposed input");
  expect_close(it, rt.indices, 0, 0, "transposed input indices");
}

TEST(Pool, MaxPoolNaNWins) {
  Tensor x = tensor({{1, NAN, 3, 4}, {5, 6, 7, 8}}, kF64).reshape({1, 1, 2, 4});
  auto [v, i] = max_pool2d_with_indices(x, 2, 2);
  EXPECT_TRUE(std::isnan(v.to_vector<double>()[0]));
  EXPECT_EQ(i.to_vector<int64_t>()[0], 1);
  EXPECT_EQ(v.to_vector<double>()[1], 8.0);
}

// The 2x2 stride-2 float32 row kernel of every instruction set the CPU has, on every
// width up to 40 (full 16-wide blocks and masked tails), with NaNs and ties.
TEST(Pool, MaxPool2x2KernelsMatchReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, 5);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const cpu::SimdTable* table = cpu::simd_for(isa);
    if (!table) {
      std::printf("MaxPool2x2KernelsMatchReference: %s not available on this CPU\n", isa);
      continue;
    }
    for (int64_t OW = 1; OW <= 40; ++OW) {
      const int64_t W = 2 * OW + OW % 2;  // odd widths leave a trailing column unused
      std::vector<float> x(static_cast<size_t>(2 * W));
      for (float& v : x) v = pick(rng) == 0 ? NAN : static_cast<float>(pick(rng) % 3);  // ties
      std::vector<float> y(OW), y_taps(OW);
      std::vector<int64_t> idx(OW);
      std::vector<uint8_t> taps(OW);
      table->max_pool_2x2_row_f32(x.data(), W, y.data(), idx.data(), OW, 100);
      table->max_pool_2x2_taps_row_f32(x.data(), W, y_taps.data(), taps.data(), OW);
      for (int64_t o = 0; o < OW; ++o) {
        const int64_t pos[4] = {2 * o, 2 * o + 1, W + 2 * o, W + 2 * o + 1};
        int64_t best = pos[0];
        for (int t = 1; t < 4; ++t) {
          float v = x[pos[t]], m = x[best];
          if (v > m || std::isnan(v)) best = pos[t];
        }
        SCOPED_TRACE(std::string(isa) + " OW=" + std::to_string(OW) + " o=" + std::to_string(o));
        EXPECT_EQ(idx[o], 100 + best);
        EXPECT_EQ(pos[taps[o]], best);
        if (std::isnan(x[best])) {
          EXPECT_TRUE(std::isnan(y[o]));
          EXPECT_TRUE(std::isnan(y_taps[o]));
        } else {
          EXPECT_EQ(y[o], x[best]);
          EXPECT_EQ(y_taps[o], x[best]);
        }
      }
    }
  }
  // Through the op: the fast path agrees with the general one (float64 takes that).
  Tensor x = random_tensor({2, 3, 6, 38}, kF64, -1, 1, 370);
  auto [v32, i32] = max_pool2d_with_indices(x.to(kF32), 2, 2);
  auto [v64, i64] = max_pool2d_with_indices(x, 2, 2);
  expect_close(v32, v64, 1e-6, 0, "values");
  expect_close(i32, i64, 0, 0, "indices");
}

// max_pool2d without indices on float32 2x2/stride-2 windows keeps uint8 taps for its
// gradient (ops max_pool2d_2x2*); everything must match the general path with indices.
TEST(Pool, MaxPool2x2TapsPathMatchesIndicesPath) {
  std::vector<Tensor> inputs = {
      random_tensor({2, 3, 6, 38}, kF32, -1, 1, 380),
      random_tensor({1, 2, 7, 9}, kF32, -1, 1, 381),  // odd sizes: last row and column unused
      random_tensor({2, 2, 9, 8}, kF32, -1, 1, 382).transpose(2, 3),  // non-contiguous
      random_tensor({0, 3, 4, 4}, kF32, -1, 1, 383),
      tensor({{1, NAN, 3, 4}, {5, 6, 7, 8}}, kF32).reshape({1, 1, 2, 4})};
  for (const Tensor& x0 : inputs) {
    std::string what = "max_pool2d 2x2 " + to_string(x0.shape());
    Tensor a = x0.detach().set_requires_grad(), b = x0.detach().set_requires_grad();
    Tensor fast = max_pool2d(a, 2);
    Tensor general = max_pool2d_with_indices(b, 2, 2).first;
    EXPECT_EQ(fast.grad_fn()->name(), "max_pool2d_2x2") << what;
    EXPECT_EQ(fast.shape(), general.shape()) << what;
    EXPECT_EQ(sum(ne(fast, fast)).item<int64_t>(), sum(ne(general, general)).item<int64_t>());
    auto no_nan = [](const Tensor& t) { return where(isnan(t), zeros_like(t), t); };
    expect_close(no_nan(fast), no_nan(general), 0, 0, what);
    if (fast.numel() == 0) continue;
    // First and second order: d/dx <pool(x), r> and d/dr of <d/dx <pool(x), r>, s>.
    Tensor r = random_tensor(fast.shape(), kF32, -1, 1, 390).set_requires_grad();
    Tensor sx = random_tensor(x0.shape(), kF32, -1, 1, 391);
    TensorList ga = grad({sum(mul(fast, r))}, {a}, {}, false, true);
    TensorList gb = grad({sum(mul(general, r))}, {b}, {}, false, true);
    expect_close(ga[0], gb[0], 0, 0, what + " gradient");
    TensorList gga = grad({sum(mul(ga[0], sx))}, {r});
    TensorList ggb = grad({sum(mul(gb[0], sx))}, {r});
    expect_close(gga[0], ggb[0], 0, 0, what + " second-order gradient");
  }
  // ceil mode on even sizes takes the path too; odd sizes in ceil mode do not.
  Tensor e = random_tensor({1, 1, 4, 6}, kF32, -1, 1, 392);
  expect_close(max_pool2d(e, 2, 2, 0, 1, true), max_pool2d_with_indices(e, 2, 2).first, 0, 0,
               "ceil mode, even sizes");
  Tensor o = random_tensor({1, 1, 5, 5}, kF32, -1, 1, 393);
  EXPECT_EQ(max_pool2d(o, 2, 2, 0, 1, true).shape(), Shape({1, 1, 3, 3}));
  // An input smaller than the window is the same error on both paths.
  expect_error(
      [] {
        max_pool2d(ones({1, 1, 1, 4}), 2);
      },
      "kernel size 2 is bigger than the padded input size 1");
}

// The taps-free form that inference graphs run (drop_unread_outputs) matches, also when
// it writes over the head of its own input, as the graph executor lets it.
// Taps come from graphs too, which may be hostile: the 2x2 scatter keeps a tap past 3 in
// its window (its low bits) instead of writing past the plane. ASan checks the bounds.
TEST(Pool, TwoByTwoScatterKeepsHostileTapsInTheirWindow) {
  Tensor g = from_vector(std::vector<float>{1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor taps = from_vector(std::vector<uint8_t>{200, 3, 255, 1}, {1, 1, 2, 2});
  Tensor gx = detail::max_pool2d_2x2_scatter(g, taps, {1, 1, 4, 4});
  EXPECT_EQ(gx.to_vector<float>(),
            (std::vector<float>{1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 3, 0, 0}));
}

TEST(Pool, MaxPool2x2ValuesMatchesAlsoInPlace) {
  const OpDef* values = find_op("max_pool2d_2x2_values");
  ASSERT_NE(values, nullptr);
  std::vector<Tensor> inputs = {random_tensor({2, 3, 6, 38}, kF32, -1, 1, 384),
                                random_tensor({1, 2, 7, 9}, kF32, -1, 1, 385),
                                random_tensor({1, 32, 28, 28}, kF32, -1, 1, 386),
                                random_tensor({0, 3, 4, 4}, kF32, -1, 1, 387),
                                random_tensor({1, 2, 4, 301}, kF32, -1, 1, 388)};  // 150 wide
  for (const Tensor& x : inputs) {
    std::string what = "max_pool2d_2x2_values " + to_string(x.shape());
    Tensor expected = max_pool2d(x, 2);
    expect_close(run_op1(*values, {x}), expected, 0, 0, what);
    Tensor buffer = x.clone();
    Tensor head = buffer.reshape({-1}).narrow(0, 0, expected.numel()).reshape(expected.shape());
    TensorList ins{buffer};
    TensorList outs{head};
    values->cpu(OpCall{ins, {}}, outs);
    expect_close(head, expected, 0, 0, what + " in place");
  }
}

TEST(Pool, AvgPoolMatchesReference) {
  struct Case {
    Shape x;
    Ints k, s, p;
    bool ceil_mode;
  };
  std::vector<Case> cases = {
      {{2, 3, 6, 7}, {2, 2}, {2, 2}, {0, 0}, false}, {{1, 2, 7, 5}, {3, 2}, {2, 1}, {1, 1}, true},
      {{2, 1, 5, 5}, {3, 3}, {2, 2}, {1, 1}, true},  {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0}, false},
      {{0, 3, 4, 4}, {2, 2}, {1, 1}, {1, 1}, false}, {{3, 2, 6, 1}, {4, 1}, {3, 1}, {2, 0}, true},
  };
  uint64_t seed = 400;
  for (const Case& c : cases) {
    Tensor x = random_tensor(c.x, kF64, -1, 1, seed++);
    for (bool include : {true, false}) {
      std::string what = "avg_pool2d " + to_string(c.x) + (include ? " include_pad" : "");
      Tensor expected = avg_pool2d_ref(x, c.k, c.s, c.p, c.ceil_mode, include);
      expect_close(avg_pool2d(x, c.k, c.s, c.p, c.ceil_mode, include), expected, 1e-12, 1e-12,
                   what);
      expect_close(avg_pool2d(x.to(kF32), c.k, c.s, c.p, c.ceil_mode, include), expected, 1e-5,
                   1e-6, what + " float32");
    }
  }
  Tensor x1 = random_tensor({2, 3, 8}, kF64, -1, 1, 450);
  expect_close(avg_pool1d(x1, 3, 2, 1, true, false),
               avg_pool2d_ref(x1.unsqueeze(2), {1, 3}, {1, 2}, {0, 1}, true, false).squeeze(2),
               1e-12, 1e-12, "avg_pool1d");
  Tensor xt = random_tensor({2, 2, 5, 6}, kF64, -1, 1, 451).transpose(2, 3);
  expect_close(avg_pool2d(xt, 3, 1, 1), avg_pool2d_ref(xt, {3, 3}, {1, 1}, {1, 1}, false, true),
               1e-12, 1e-12, "avg_pool2d transposed input");
  expect_close(avg_pool2d(xt.to(DType::BFloat16), 2).to(kF64),
               avg_pool2d_ref(xt, {2, 2}, {2, 2}, {0, 0}, false, true), 2e-2, 2e-2,
               "avg_pool2d bfloat16");
}

TEST(Pool, AdaptivePoolingMatchesReference) {
  std::vector<std::pair<Shape, Ints>> cases = {
      {{2, 3, 6, 7}, {3, 3}}, {{1, 2, 5, 5}, {2, 3}}, {{2, 1, 3, 2}, {5, 4}},
      {{1, 1, 1, 1}, {1, 1}}, {{0, 2, 4, 4}, {2, 2}}, {{2, 2, 7, 1}, {3, 1}},
  };
  uint64_t seed = 500;
  for (const auto& [shape, size] : cases) {
    std::string what = to_string(shape) + " -> " + to_string(Shape(size));
    Tensor x = random_tensor(shape, kF64, -1, 1, seed++);
    PoolResult avg = adaptive_pool2d_ref(x, size[0], size[1], false);
    PoolResult mx = adaptive_pool2d_ref(x, size[0], size[1], true);
    expect_close(adaptive_avg_pool2d(x, size), avg.values, 1e-12, 1e-12, "avg " + what);
    auto [v, i] = adaptive_max_pool2d_with_indices(x, size);
    expect_close(v, mx.values, 0, 0, "max " + what);
    expect_close(i, mx.indices, 0, 0, "max indices " + what);
    expect_close(adaptive_max_pool2d(x.to(kF32), size), mx.values, 1e-6, 0, "max float32 " + what);
  }
  Tensor x1 = random_tensor({2, 3, 10}, kF64, -1, 1, 550);
  expect_close(adaptive_avg_pool1d(x1, 4),
               adaptive_pool2d_ref(x1.unsqueeze(2), 1, 4, false).values.squeeze(2), 1e-12, 1e-12,
               "adaptive_avg_pool1d");
  auto [v1, i1] = adaptive_max_pool1d_with_indices(x1, 3);
  PoolResult r1 = adaptive_pool2d_ref(x1.unsqueeze(2), 1, 3, true);
  expect_close(v1, r1.values.squeeze(2), 0, 0, "adaptive_max_pool1d");
  expect_close(i1, r1.indices.squeeze(2), 0, 0, "adaptive_max_pool1d indices");
  expect_close(adaptive_max_pool1d(x1, 7),
               adaptive_pool2d_ref(x1.unsqueeze(2), 1, 7, true).values.squeeze(2), 0, 0,
               "adaptive_max_pool1d values");
  Tensor xs = random_tensor({2, 3, 9, 8}, kF64, -1, 1, 551).slice(2, 0, 9, 2);
  expect_close(adaptive_avg_pool2d(xs, 2), adaptive_pool2d_ref(xs, 2, 2, false).values, 1e-12,
               1e-12, "sliced input");
}

TEST(Pool, Gradients) {
  Tensor x = random_tensor({2, 2, 5, 4}, kF64, -1, 1, 600);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return max_pool2d(in[0], {3, 2}, {2, 1}, 1, 1, true);
      },
      {x}, 1e-6, 1e-6, 1e-5, "max_pool2d");
  gradcheck([](const std::vector<Tensor>& in) { return max_pool1d(in[0], 2, 1, 1); },
            {random_tensor({1, 2, 5}, kF64, -1, 1, 601)}, 1e-6, 1e-6, 1e-5, "max_pool1d");
  gradcheck([](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1, true, false); },
            {x}, 1e-6, 1e-6, 1e-5, "avg_pool2d");
  gradcheck([](const std::vector<Tensor>& in) { return avg_pool1d(in[0], 2, 1, 1); },
            {random_tensor({1, 2, 5}, kF64, -1, 1, 602)}, 1e-6, 1e-6, 1e-5, "avg_pool1d");
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return adaptive_avg_pool2d(in[0], {3, 2});
      },
      {x}, 1e-6, 1e-6, 1e-5, "adaptive_avg_pool2d");
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return adaptive_max_pool2d(in[0], {2, 3});
      },
      {x}, 1e-6, 1e-6, 1e-5, "adaptive_max_pool2d");
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool1d(in[0], 3); },
            {random_tensor({1, 2, 5}, kF64, -1, 1, 603)}, 1e-6, 1e-6, 1e-5, "adaptive_avg_pool1d");
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_max_pool1d(in[0], 3); },
            {random_tensor({1, 2, 5}, kF64, -1, 1, 604)}, 1e-6, 1e-6, 1e-5, "adaptive_max_pool1d");
}

TEST(Pool, HigherOrderGradients) {
  Tensor x = random_tensor({2, 2, 5, 4}, kF64, -1, 1, 610);
  check_backward_op([](const Tensor& t) { return max_pool2d(t, 2, 1, 1); }, x, "max_pool2d", true);
  check_backward_op([](const Tensor& t) { return adaptive_max_pool2d(t, 3); }, x,
                    "adaptive_max_pool2d");
  check_backward_op([](const Tensor& t) { return avg_pool2d(t, 3, 2, 1, true); }, x, "avg_pool2d",
                    true);
  check_backward_op(
      [](const Tensor& t) {
        return adaptive_avg_pool2d(t, {2, 3});
      },
      x, "adaptive_avg_pool2d");
  // The max-pool backward routes the gradient to the argmax; its gradient gathers there.
  Tensor xl = x.detach().set_requires_grad();
  auto [v, idx] = max_pool2d_with_indices(xl, 2);
  Tensor gv = random_tensor(v.shape(), kF64, -1, 1, 611).set_requires_grad();
  Tensor gx = grad({sum(mul(v, gv))}, {xl}, {}, true, true)[0];
  Tensor r = random_tensor(x.shape(), kF64, -1, 1, 612);
  Tensor ggv = grad({sum(mul(gx, r))}, {gv})[0];
  std::vector<double> rv = r.to_vector<double>(), got = ggv.to_vector<double>();
  std::vector<int64_t> iv = idx.to_vector<int64_t>();
  int64_t plane_in = 20, plane_out = static_cast<int64_t>(iv.size()) / 4;
  for (size_t j = 0; j < iv.size(); ++j) {
    EXPECT_DOUBLE_EQ(got[j], rv[(j / plane_out) * plane_in + iv[j]]) << j;
  }
}

TEST(Pool, Errors) {
  expect_error(
      [] {
        max_pool2d(zeros({1, 1, 2, 2}), 5, 1, 1);
      },
      "max_pool2d: kernel size 5 is bigger than the padded input size 4 in spatial "
      "dimension 0 (input [1,1,2,2], padding [1,1])");
  expect_error(
      [] {
        max_pool2d(zeros({1, 1, 6, 6}), 3, 1, 2);
      },
      "max_pool2d: padding [2,2] must be non-negative and at most half the kernel size "
      "[3,3]");
  expect_error(
      [] {
        avg_pool1d(zeros({1, 1, 3}), 4);
      },
      "avg_pool1d: kernel size 4 is bigger than the padded input size 3 in spatial "
      "dimension 0 (input [1,1,3], padding [0])");
  expect_error(
      [] {
        avg_pool2d(zeros({1, 4, 4}), 2);
      },
      "avg_pool2d: expects a 4-d input [N, C, H, W], got shape [1,4,4]");
  expect_error(
      [] {
        avg_pool2d(zeros({1, 1, 4, 4}, DType::Int64), 2);
      },
      "avg_pool2d: expects a floating-point input, got int64");
  expect_error(
      [] {
        max_pool2d(zeros({1, 1, 4, 4}), {2, 2, 2});
      },
      "max_pool2d: kernel_size needs 1 or 2 values, got 3");
  expect_error(
      [] {
        adaptive_avg_pool2d(zeros({1, 1, 4, 4}), {0, 2});
      },
      "adaptive_avg_pool2d: output_size must be positive, got [0,2]");
  expect_error(
      [] {
        adaptive_max_pool1d(zeros({1, 1, 0}), 2);
      },
      "adaptive_max_pool1d: expects non-empty spatial dimensions, got input [1,1,0]");
}

// ------------------------------------------------------------------ normalization references

// softmax / log_softmax along `axis` by direct loops.
Tensor softmax_ref(const Tensor& x, int64_t axis, bool log) {
  std::vector<double> X = x.to_vector<double>();
  int64_t nd = x.dim(), ax = axis < 0 ? axis + nd : axis;
  int64_t outer = 1, n = x.size(ax), inner = 1;
  for (int64_t d = 0; d < ax; ++d) outer *= x.size(d);
  for (int64_t d = ax + 1; d < nd; ++d) inner *= x.size(d);
  std::vector<double> Y(X.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t i) { return (o * n + i) * inner + j; };
      double m = -INFINITY, total = 0;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, X[at(i)]);
      for (int64_t i = 0; i < n; ++i) total += std::exp(X[at(i)] - m);
      for (int64_t i = 0; i < n; ++i) {
        Y[at(i)] = log ? X[at(i)] - m - std::log(total) : std::exp(X[at(i)] - m) / total;
      }
    }
  return from_vector(Y, x.shape());
}

// Normalizes each of `rows` rows of `cols` values (biased variance); returns them.
std::vector<double> normalize_rows(const std::vector<double>& X, int64_t rows, int64_t cols,
                                   double eps) {
  std::vector<double> Y(X.size());
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < cols; ++c) m += X[r * cols + c];
    m /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) v += (X[r * cols + c] - m) * (X[r * cols + c] - m);
    v /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) Y[r * cols + c] = (X[r * cols + c] - m) / std::sqrt(v + eps);
  }
  return Y;
}

// Applies per-channel weight and bias to [N, C, S] values.
std::vector<double> channel_affine(std::vector<double> Y, int64_t N, int64_t C, int64_t S,
                                   const Tensor& w, const Tensor& b) {
  std::vector<double> W = w.defined() ? w.to_vector<double>() : std::vector<double>(C, 1.0);
  std::vector<double> B = b.defined() ? b.to_vector<double>() : std::vector<double>(C, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        double& y = Y[(n * C + c) * S + s];
        y = y * W[c] + B[c];
      }
  return Y;
}

TEST(Norm, SoftmaxMatchesReference) {
  std::vector<Shape> shapes = {{3, 4, 5}, {1, 7}, {2, 1, 3}, {5}, {0, 4}, {2, 300, 2}};
  uint64_t seed = 700;
  for (const Shape& s : shapes) {
    Tensor x = random_tensor(s, kF64, -5, 5, seed++);
    for (int64_t axis = -1; axis < static_cast<int64_t>(s.size()); ++axis) {
      std::string what = to_string(s) + " axis " + std::to_string(axis);
      expect_close(softmax(x, axis), softmax_ref(x, axis, false), 1e-12, 1e-14, "softmax " + what);
      expect_close(log_softmax(x, axis), softmax_ref(x, axis, true), 1e-12, 1e-12,
                   "log_softmax " + what);
      expect_close(softmax(x.to(kF32), axis), softmax_ref(x, axis, false), 1e-5, 1e-7,
                   "softmax float32 " + what);
    }
  }
  // Large values stay finite; a non-contiguous input; a 0-d input.
  Tensor big = mul(random_tensor({4, 6}, kF64, -1, 1, 710), 1000.0);
  expect_close(softmax(big, 1), softmax_ref(big, 1, false), 1e-12, 1e-14, "large values");
  expect_close(log_softmax(big.to(kF32), 0), softmax_ref(big, 0, true), 1e-5, 1e-3,
               "large values float32");
  Tensor xt = random_tensor({5, 3, 4}, kF64, -2, 2, 711).transpose(0, 2);
  expect_close(softmax(xt, 1), softmax_ref(xt, 1, false), 1e-12, 1e-14, "transposed input");
  expect_close(log_softmax(xt, -1), softmax_ref(xt, -1, true), 1e-12, 1e-12, "transposed log");
  EXPECT_EQ(softmax(scalar_tensor(3.0, kF64), 0).item<double>(), 1.0);
  expect_close(softmax(xt.to(DType::Float16), 0), softmax_ref(xt, 0, false), 1e-2, 1e-3, "float16");
}

TEST(Norm, SoftmaxGradients) {
  Tensor x = random_tensor({2, 3, 4}, kF64, -2, 2, 720);
  for (int64_t axis : {0, 1, 2}) {
    gradcheck([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {x}, 1e-6,
              1e-6, 1e-5, "softmax axis " + std::to_string(axis));
    gradcheck([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {x}, 1e-6,
              1e-6, 1e-5, "log_softmax axis " + std::to_string(axis));
  }
  gradgradcheck([](const std::vector<Tensor>& in) { return softmax(in[0], 1); }, {x}, 1e-6, 1e-5,
                1e-4, "softmax");
  gradgradcheck([](const std::vector<Tensor>& in) { return log_softmax(in[0], -1); }, {x}, 1e-6,
                1e-5, 1e-4, "log_softmax");
}

TEST(Norm, BatchNormTrainingAndInference) {
  for (Shape s : {Shape{4, 3, 2, 5}, Shape{6, 2}, Shape{2, 1, 3}, Shape{3, 2, 1, 1, 2}}) {
    std::string what = "batch_norm " + to_string(s);
    Tensor x = random_tensor(s, kF64, -2, 3, 730);
    int64_t N = s[0], C = s[1], S = x.numel() / (N * C);
    Tensor w = random_tensor({C}, kF64, 0.5, 1.5, 731), b = random_tensor({C}, kF64, -1, 1, 732);
    // Per-channel statistics by loops over [N, C, S].
    std::vector<double> X = x.to_vector<double>(), mean(C, 0), var(C, 0);
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) mean[c] += X[(n * C + c) * S + i];
      mean[c] /= static_cast<double>(N * S);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          double d = X[(n * C + c) * S + i] - mean[c];
          var[c] += d * d;
        }
      var[c] /= static_cast<double>(N * S);
    }
    std::vector<double> Y(X.size());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < S; ++i) {
          int64_t k = (n * C + c) * S + i;
          Y[k] = (X[k] - mean[c]) / std::sqrt(var[c] + 1e-5);
        }
    Tensor rm = full({C}, 0.5, kF64), rv = full({C}, 2.0, kF64);
    Tensor y = batch_norm(x, rm, rv, w, b, true, 0.2);
    expect_close(y, from_vector(channel_affine(Y, N, C, S, w, b), s), 1e-10, 1e-12, what);
    std::vector<double> rm_ref(C), rv_ref(C);
    double unbias = static_cast<double>(N * S) / static_cast<double>(N * S - 1);
    for (int64_t c = 0; c < C; ++c) {
      rm_ref[c] = 0.8 * 0.5 + 0.2 * mean[c];
      rv_ref[c] = 0.8 * 2.0 + 0.2 * var[c] * unbias;
    }
    expect_close(rm, from_vector(rm_ref, {C}), 1e-12, 1e-12, what + " running_mean");
    expect_close(rv, from_vector(rv_ref, {C}), 1e-12, 1e-12, what + " running_var");
    // Inference uses the running statistics.
    std::vector<double> Yi(X.size());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < S; ++i) {
          int64_t k = (n * C + c) * S + i;
          Yi[k] = (X[k] - rm_ref[c]) / std::sqrt(rv_ref[c] + 1e-3);
        }
    expect_close(batch_norm(x, rm, rv, {}, {}, false, 0.1, 1e-3), from_vector(Yi, s), 1e-10, 1e-12,
                 what + " inference");
    expect_close(batch_norm(x.to(kF32), rm.to(kF32), rv.to(kF32), {}, {}, false, 0.1, 1e-3),
                 from_vector(Yi, s), 1e-5, 1e-5, what + " inference float32");
  }
  // Training without running statistics, and inference on an empty batch.
  Tensor x = random_tensor({3, 2, 4}, kF64, -1, 1, 733);
  EXPECT_EQ(batch_norm(x, {}, {}, {}, {}, true).shape(), x.shape());
  Tensor empty = zeros({0, 2, 4}, kF64);
  EXPECT_EQ(batch_norm(empty, zeros({2}, kF64), ones({2}, kF64)).shape(), empty.shape());
}

TEST(Norm, LayerGroupInstanceNormMatchReference) {
  Tensor x = random_tensor({3, 4, 2, 3}, kF64, -2, 2, 740);
  std::vector<double> X = x.to_vector<double>();
  // layer_norm over the last two dims, with and without an affine.
  Tensor w = random_tensor({2, 3}, kF64, 0.5, 1.5, 741),
         b = random_tensor({2, 3}, kF64, -1, 1, 742);
  std::vector<double> L = normalize_rows(X, 12, 6, 1e-5);
  std::vector<double> W = w.to_vector<double>(), B = b.to_vector<double>(), La = L;
  for (size_t i = 0; i < La.size(); ++i) La[i] = La[i] * W[i % 6] + B[i % 6];
  expect_close(layer_norm(x, {2, 3}, w, b), from_vector(La, x.shape()), 1e-10, 1e-12, "layer_norm");
  expect_close(layer_norm(x, {2, 3}), from_vector(L, x.shape()), 1e-10, 1e-12,
               "layer_norm without affine");
  expect_close(layer_norm(x, {3}, {}, {}, 1e-3),
               from_vector(normalize_rows(X, 24, 3, 1e-3), x.shape()), 1e-10, 1e-12,
               "layer_norm last dim");
  // group_norm with 2 groups of 2 channels.
  Tensor gw = random_tensor({4}, kF64, 0.5, 1.5, 743), gb = random_tensor({4}, kF64, -1, 1, 744);
  std::vector<double> G = channel_affine(normalize_rows(X, 6, 12, 1e-5), 3, 4, 6, gw, gb);
  expect_close(group_norm(x, 2, gw, gb), from_vector(G, x.shape()), 1e-10, 1e-12, "group_norm");
  expect_close(group_norm(x, 4), from_vector(normalize_rows(X, 12, 6, 1e-5), x.shape()), 1e-10,
               1e-12, "group_norm = instance");
  expect_close(group_norm(x, 1), from_vector(normalize_rows(X, 3, 24, 1e-5), x.shape()), 1e-10,
               1e-12, "group_norm one group");
  // instance_norm.
  std::vector<double> I = channel_affine(normalize_rows(X, 12, 6, 1e-5), 3, 4, 6, gw, gb);
  expect_close(instance_norm(x, gw, gb), from_vector(I, x.shape()), 1e-10, 1e-12, "instance_norm");
  // Non-contiguous inputs, float32 and empty batches.
  Tensor xt = x.transpose(2, 3);
  expect_close(
      layer_norm(xt, {3, 2}),
      from_vector(normalize_rows(xt.contiguous().to_vector<double>(), 12, 6, 1e-5), xt.shape()),
      1e-10, 1e-12, "layer_norm transposed");
  expect_close(group_norm(x.to(kF32), 2, gw.to(kF32), gb.to(kF32)), from_vector(G, x.shape()), 1e-4,
               1e-5, "group_norm float32");
  for (Shape s : {Shape{0, 4, 2, 3}}) {
    Tensor e = zeros(s, kF64);
    EXPECT_EQ(layer_norm(e, {2, 3}).shape(), s);
    EXPECT_EQ(group_norm(e, 2).shape(), s);
    EXPECT_EQ(instance_norm(e).shape(), s);
  }
}

TEST(Norm, Gradients) {
  Tensor x = random_tensor({3, 2, 2, 2}, kF64, -2, 2, 750);
  Tensor w = random_tensor({2}, kF64, 0.5, 1.5, 751), b = random_tensor({2}, kF64, -1, 1, 752);
  gradcheck(
      [](const std::vector<Tensor>& in) { return batch_norm(in[0], {}, {}, in[1], in[2], true); },
      {x, w, b}, 1e-6, 1e-6, 1e-5, "batch_norm training");
  Tensor rm = random_tensor({2}, kF64, -1, 1, 753), rv = random_tensor({2}, kF64, 0.5, 2, 754);
  gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], rm, rv, in[1], in[2]); },
            {x, w, b}, 1e-6, 1e-6, 1e-5, "batch_norm inference");
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return layer_norm(in[0], {2, 2}, in[1], in[2]);
      },
      {x, random_tensor({2, 2}, kF64, 0.5, 1.5, 755), random_tensor({2, 2}, kF64, -1, 1, 756)},
      1e-6, 1e-6, 1e-5, "layer_norm");
  gradcheck([](const std::vector<Tensor>& in) { return group_norm(in[0], 1, in[1], in[2]); },
            {x, w, b}, 1e-6, 1e-6, 1e-5, "group_norm");
  gradcheck([](const std::vector<Tensor>& in) { return instance_norm(in[0], in[1], in[2]); },
            {x, w, b}, 1e-6, 1e-6, 1e-5, "instance_norm");
  gradgradcheck([](const std::vector<Tensor>& in) { return layer_norm(in[0], {4}); },
                {random_tensor({2, 4}, kF64, -2, 2, 757)}, 1e-6, 1e-5, 1e-4, "layer_norm");
}

TEST(Norm, Errors) {
  expect_error(
      [] {
        softmax(zeros({2, 3}, DType::Int64));
      },
      "softmax: expects a floating-point input, got int64");
  expect_error([] { log_softmax(zeros({2, 3}), 2); }, "log_softmax");
  expect_error(
      [] {
        batch_norm(zeros({2, 3, 4}), zeros({4}), ones({3}));
      },
      "batch_norm: running_mean must have shape [3] (the channels of input [2,3,4]), got "
      "[4]");
  expect_error(
      [] {
        batch_norm(zeros({2, 3}), {}, {});
      },
      "batch_norm: running_mean and running_var are required in inference mode");
  expect_error(
      [] {
        batch_norm(zeros({1, 3}), {}, {}, {}, {}, true);
      },
      "batch_norm: expects more than 1 value per channel when training, got input [1,3]");
  expect_error(
      [] {
        layer_norm(zeros({2, 3, 5}), {4});
      },
      "layer_norm: normalized_shape [4] must be non-empty and match the trailing "
      "dimensions of input [2,3,5]");
  expect_error(
      [] {
        layer_norm(zeros({2, 3}), {3}, zeros({2}));
      },
      "layer_norm: weight must have shape [3], got [2]");
  expect_error(
      [] {
        group_norm(zeros({2, 6, 4}), 4);
      },
      "group_norm: num_groups 4 must be positive and divide the 6 channels of input "
      "[2,6,4]");
  expect_error([] { instance_norm(zeros({2, 3})); }, "instance_norm: expects an input [N, C, ...]");
}

// ------------------------------------------------------------------ misc references

// PyTorch-style padding by direct index mapping over every output element.
Tensor pad_ref(const Tensor& x, const Ints& pads, const std::string& mode, double value) {
  std::vector<double> X = x.to_vector<double>();
  int64_t nd = x.dim();
  Ints before(nd, 0), after(nd, 0);
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    before[nd - 1 - i] = pads[2 * i];
    after[nd - 1 - i] = pads[2 * i + 1];
  }
  Shape out;
  for (int64_t d = 0; d < nd; ++d) out.push_back(x.size(d) + before[d] + after[d]);
  std::vector<double> Y(shape_numel(out));
  Dims in_strides = contiguous_strides(x.shape());
  for (int64_t flat = 0; flat < static_cast<int64_t>(Y.size()); ++flat) {
    int64_t rem = flat, src = 0;
    bool inside = true;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t o = rem % out[d];
      rem /= out[d];
      int64_t i = o - before[d], L = x.size(d);
      if (mode == "reflect") {
        if (i < 0) i = -i;
        if (i >= L) i = 2 * (L - 1) - i;
      } else if (mode == "replicate") {
        i = std::min(std::max<int64_t>(i, 0), L - 1);
      } else if (i < 0 || i >= L) {
        inside = false;
      }
      src += i * in_strides[d];
    }
    Y[flat] = inside ? X[src] : value;
  }
  return from_vector(Y, out);
}

// PyTorch's upsample_nearest2d / upsample_bilinear2d by direct loops; scale > 0 means the
// output size came from that scale factor.
Tensor interpolate_ref(const Tensor& x, int64_t OH, int64_t OW, const std::string& mode,
                       bool align_corners, double scale_h = 0, double scale_w = 0) {
  std::vector<double> X = x.to_vector<double>();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto nearest = [](int64_t o, int64_t in, int64_t out, double scale) {
    double src = scale > 0 ? std::floor(static_cast<double>(o) * (1.0 / scale))
                           : std::floor(static_cast<double>(o * in) / static_cast<double>(out));
    return std::min(static_cast<int64_t>(src), in - 1);
  };
  auto source = [&](int64_t o, int64_t in, int64_t out, double scale) {
    if (align_corners) {
      return out > 1 ? static_cast<double>(o) * static_cast<double>(in - 1) /
                           static_cast<double>(out - 1)
                     : 0.0;
    }
    double ratio = scale > 0 ? 1.0 / scale : static_cast<double>(in) / static_cast<double>(out);
    return std::max(ratio * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
  };
  std::vector<double> Y;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const double* P = X.data() + pl * H * W;
        if (mode == "nearest") {
          Y.push_back(P[nearest(oh, H, OH, scale_h) * W + nearest(ow, W, OW, scale_w)]);
          continue;
        }
        double sh = source(oh, H, OH, scale_h), sw = source(ow, W, OW, scale_w);
        int64_t h0 = static_cast<int64_t>(sh), w0 = static_cast<int64_t>(sw);
        int64_t h1 = h0 + (h0 < H - 1 ? 1 : 0), w1 = w0 + (w0 < W - 1 ? 1 : 0);
        double lh = sh - static_cast<double>(h0), lw = sw - static_cast<double>(w0);
        Y.push_back((1 - lh) * ((1 - lw) * P[h0 * W + w0] + lw * P[h0 * W + w1]) +
                    lh * ((1 - lw) * P[h1 * W + w0] + lw * P[h1 * W + w1]));
      }
  return from_vector(Y, {N, C, OH, OW});
}

TEST(Misc, DropoutMasksAndScales) {
  Tensor x = random_tensor({2000}, kF32, 1, 2, 800);
  Generator g1(42), g2(42), g3(43);
  Tensor y1 = dropout(x, 0.3, true, &g1), y2 = dropout(x, 0.3, true, &g2);
  Tensor y3 = dropout(x, 0.3, true, &g3);
  expect_close(y1, y2, 0, 0, "same seed");
  std::vector<double> xv = x.to_vector<double>(), yv = y1.to_vector<double>(),
                      y3v = y3.to_vector<double>();
  int64_t zeros_count = 0, differ = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0) {
      ++zeros_count;
    } else {
      EXPECT_NEAR(yv[i], xv[i] / 0.7, 1e-5) << i;
    }
    differ += (yv[i] == 0) != (y3v[i] == 0);
  }
  EXPECT_NEAR(static_cast<double>(zeros_count) / 2000.0, 0.3, 0.05);
  EXPECT_GT(differ, 0);
  // The gradient is the same mask and scale.
  Tensor xl = x.to(kF64).set_requires_grad();
  Generator g4(7);
  Tensor y = dropout(xl, 0.5, true, &g4);
  Tensor gx = grad({sum(y)}, {xl})[0];
  std::vector<double> yd = y.to_vector<double>(), gd = gx.to_vector<double>();
  for (size_t i = 0; i < yd.size(); ++i) EXPECT_DOUBLE_EQ(gd[i], yd[i] == 0 ? 0.0 : 2.0) << i;
  // No-ops and the all-dropped case.
  EXPECT_TRUE(dropout(x, 0.5, false).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).same(x));
  expect_close(dropout(x, 1.0, true), zeros({2000}), 0, 0, "p = 1");
  expect_error([&] { dropout(x, 1.5); }, "dropout: probability must be in [0, 1], got 1.5");
  expect_error([&] { dropout(zeros({3}, DType::Int32), 0.5); },
               "dropout: expects a floating-point input, got int32");
}

TEST(Misc, EmbeddingMatchesReferenceAndScattersGradients) {
  Tensor w = random_tensor({6, 4}, kF64, -1, 1, 810);
  std::vector<double> W = w.to_vector<double>();
  std::vector<int64_t> ids = {3, 0, 3, 5, 2, 3};
  for (DType t : {DType::Int64, DType::Int32}) {
    Tensor idx = from_vector(ids, {2, 3}).to(t);
    Tensor y = embedding(w, idx);
    ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
    std::vector<double> Y;
    for (int64_t i : ids) Y.insert(Y.end(), W.begin() + i * 4, W.begin() + (i + 1) * 4);
    expect_close(y, from_vector(Y, {2, 3, 4}), 0, 0, dtype_name(t));
  }
  // Non-contiguous weight and indices, a 0-d index, an empty index tensor.
  Tensor wt = random_tensor({4, 6}, kF64, -1, 1, 811).t();
  Tensor it = from_vector(std::vector<int64_t>{1, 5, 0, 2}, {2, 2}).t();
  std::vector<double> WT = wt.contiguous().to_vector<double>(), Yt;
  for (int64_t i : it.to_vector<int64_t>())
    Yt.insert(Yt.end(), WT.begin() + i * 4, WT.begin() + (i + 1) * 4);
  expect_close(embedding(wt, it), from_vector(Yt, {2, 2, 4}), 0, 0, "non-contiguous");
  EXPECT_EQ(embedding(w, scalar_tensor(2, DType::Int64)).shape(), (Shape{4}));
  EXPECT_EQ(embedding(w, zeros({0}, DType::Int64)).shape(), (Shape{0, 4}));
  // Gradient: repeated rows accumulate, the padding row gets nothing.
  Tensor wl = w.detach().set_requires_grad();
  Tensor idx = from_vector(ids, {2, 3});
  Tensor r = random_tensor({2, 3, 4}, kF64, -1, 1, 812);
  Tensor gw = grad({sum(mul(embedding(wl, idx, 3), r))}, {wl})[0];
  std::vector<double> R = r.to_vector<double>(), GW(24, 0.0);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == 3) continue;
    for (int j = 0; j < 4; ++j) GW[ids[i] * 4 + j] += R[i * 4 + j];
  }
  expect_close(gw, from_vector(GW, {6, 4}), 1e-15, 1e-15, "scatter-add gradient");
  // (With padding_idx the forward still reads that row while its gradient is zero, like
  // PyTorch, so finite differences would disagree there by design.)
  gradcheck([&](const std::vector<Tensor>& in) { return embedding(in[0], idx); }, {w}, 1e-6, 1e-6,
            1e-5, "embedding");
  check_backward_op([&](const Tensor& t) { return embedding(t, idx, 5); }, w, "embedding", true);
  expect_error(
      [&] {
        embedding(w, from_vector(std::vector<int64_t>{1, 6}, {2}));
      },
      "embedding: index 6 is out of range for 6 embeddings");
  expect_error([&] { embedding(w, zeros({2})); },
               "embedding: expects integer indices, got float32");
  expect_error([&] { embedding(zeros({6}), idx); },
               "embedding: expects a 2-d weight [num_embeddings, dim], got shape [6]");
  expect_error([&] { embedding(w, idx, 6); },
               "embedding: padding_idx 6 is out of range for 6 embeddings");
}

TEST(Misc, PadMatchesReference) {
  Tensor x = random_tensor({2, 3, 4, 5}, kF64, -1, 1, 820);
  struct Case {
    Ints pads;
    std::string mode;
  };
  std::vector<Case> cases = {
      {{1, 2}, "constant"},
      {{1, 2, 0, 3}, "reflect"},
      {{2, 1, 1, 1, 1, 0}, "replicate"},
      {{-1, 2, 0, -2}, "constant"},
      {{4, 4, 3, 3}, "reflect"},
      {{0, 0, 0, 0, 1, 1, 2, 0}, "constant"},
      {{3, 0}, "replicate"},
      {{}, "reflect"},
  };
  for (const Case& c : cases) {
    std::string what = c.mode + " " + to_string(Shape(c.pads));
    expect_close(pad(x, c.pads, c.mode, 0.5), pad_ref(x, c.pads, c.mode, 0.5), 0, 0, what);
    expect_close(pad(x.to(kF32), c.pads, c.mode, 0.5), pad_ref(x, c.pads, c.mode, 0.5), 1e-7, 0,
                 what + " float32");
  }
  Tensor xt = x.transpose(1, 3);
  expect_close(pad(xt, {1, 1, 2, 0}, "reflect"), pad_ref(xt, {1, 1, 2, 0}, "reflect", 0), 0, 0,
               "reflect transposed");
  Tensor xi = random_tensor({3, 4}, DType::Int64, -5, 5, 821);
  Tensor yi = pad(xi, {1, 1}, "constant", 7);
  EXPECT_EQ(yi.dtype(), DType::Int64);
  expect_close(yi, pad_ref(xi, {1, 1}, "constant", 7), 0, 0, "int64");
  Tensor x1 = random_tensor({5}, kF64, -1, 1, 822);
  expect_close(pad(x1, {2, 3}, "reflect"), pad_ref(x1, {2, 3}, "reflect", 0), 0, 0, "1-d");
  expect_close(pad(zeros({0, 3}, kF64), {1, 1}, "constant", 2), zeros({0, 5}, kF64), 0, 0, "empty");
  expect_close(pad(zeros({2, 0}, kF64), {1, 1}, "constant", 2), full({2, 2}, 2.0, kF64), 0, 0,
               "empty dimension");
}

TEST(Misc, PadGradientsAndErrors) {
  Tensor x = random_tensor({1, 2, 3, 4}, kF64, -1, 1, 830);
  for (const char* mode : {"constant", "reflect", "replicate"}) {
    Ints pads = std::string(mode) == "constant" ? Ints{2, -1, 1, 1} : Ints{2, 3, 2, 1};
    gradcheck([&](const std::vector<Tensor>& in) { return pad(in[0], pads, mode, 0.3); }, {x}, 1e-6,
              1e-6, 1e-5, std::string("pad ") + mode);
    check_backward_op([&](const Tensor& t) { return pad(t, pads, mode); }, x,
                      std::string("pad ") + mode, true);
  }
  expect_error(
      [] {
        pad(zeros({2, 3}), {1, 2, 3});
      },
      "pad: pads must hold two values (before, after) per padded dimension");
  expect_error([] { pad(zeros({2, 3}), {1, 1, 1, 1, 1, 1}); }, "at most 4 for input [2,3]; got 6");
  expect_error(
      [] {
        pad(zeros({2, 3}), {3, 0}, "reflect");
      },
      "pad: reflect padding (3, 0) must be smaller than the size of dimension 1 of input "
      "[2,3]");
  expect_error(
      [] {
        pad(zeros({2, 3}), {-1, 0}, "replicate");
      },
      "pad: replicate padding must be non-negative");
  expect_error(
      [] {
        pad(zeros({2, 3}), {1, 0}, "circular");
      },
      "pad: mode must be \"constant\", \"reflect\" or \"replicate\", got \"circular\"");
  expect_error(
      [] {
        pad(zeros({2, 3}), {-2, -2});
      },
      "pad: padding (-2, -2) makes dimension 1 of input [2,3] negative");
}

TEST(Misc, InterpolateMatchesReference) {
  Tensor x = random_tensor({2, 3, 4, 5}, kF64, -1, 1, 840);
  std::vector<Ints> sizes = {{8, 10}, {3, 7}, {7, 3}, {1, 1}, {4, 5}, {9, 2}};
  for (const Ints& s : sizes) {
    std::string what = to_string(Shape(s));
    expect_close(interpolate(x, s), interpolate_ref(x, s[0], s[1], "nearest", false), 0, 0,
                 "nearest " + what);
    for (bool ac : {false, true}) {
      std::string w2 = what + (ac ? " align_corners" : "");
      expect_close(interpolate(x, s, "bilinear", ac),
                   interpolate_ref(x, s[0], s[1], "bilinear", ac), 1e-12, 1e-12, "bilinear " + w2);
      expect_close(interpolate(x.to(kF32), s, "bilinear", ac),
                   interpolate_ref(x, s[0], s[1], "bilinear", ac), 1e-5, 1e-6,
                   "bilinear float32 " + w2);
    }
  }
  // Scale factors: output floor(in * scale), sampling by 1 / scale.
  expect_close(interpolate(x, 2.0), interpolate_ref(x, 8, 10, "nearest", false, 2.0, 2.0), 0, 0,
               "nearest x2");
  expect_close(interpolate(x, 1.5, 0.7, "nearest"),
               interpolate_ref(x, 6, 3, "nearest", false, 1.5, 0.7), 0, 0, "nearest x1.5 x0.7");
  expect_close(interpolate(x, 1.7, "bilinear"),
               interpolate_ref(x, 6, 8, "bilinear", false, 1.7, 1.7), 1e-12, 1e-12,
               "bilinear x1.7");
  expect_close(interpolate(x, 2.5, 2.0, "bilinear", true),
               interpolate_ref(x, 10, 10, "bilinear", true), 1e-12, 1e-12,
               "bilinear align_corners x2.5");
  Tensor xt = random_tensor({1, 2, 5, 4}, kF64, -1, 1, 841).transpose(2, 3);
  expect_close(interpolate(xt, {7, 6}, "bilinear"), interpolate_ref(xt, 7, 6, "bilinear", false),
               1e-12, 1e-12, "transposed input");
  EXPECT_EQ(interpolate(zeros({0, 3, 4, 4}), {8, 8}).shape(), (Shape{0, 3, 8, 8}));
}

TEST(Misc, InterpolateGradientsAndErrors) {
  Tensor x = random_tensor({1, 2, 3, 4}, kF64, -1, 1, 850);
  gradcheck(
      [](const std::vector<Tensor>& in) {
        return interpolate(in[0], {5, 3});
      },
      {x}, 1e-6, 1e-6, 1e-5, "nearest");
  for (bool ac : {false, true}) {
    gradcheck(
        [ac](const std::vector<Tensor>& in) {
          return interpolate(in[0], {5, 7}, "bilinear", ac);
        },
        {x}, 1e-6, 1e-6, 1e-5, "bilinear");
    check_backward_op(
        [ac](const Tensor& t) {
          return interpolate(t, {2, 6}, "bilinear", ac);
        },
        x, "bilinear", true);
  }
  check_backward_op([](const Tensor& t) { return interpolate(t, 2.0); }, x, "nearest");
  expect_error(
      [] {
        interpolate(zeros({1, 4, 4}), {2, 2});
      },
      "interpolate: expects a 4-d input [N, C, H, W], got shape [1,4,4]");
  expect_error(
      [] {
        interpolate(zeros({1, 1, 4, 4}), {2, 2}, "bicubic");
      },
      "interpolate: mode must be \"nearest\" or \"bilinear\", got \"bicubic\"");
  expect_error(
      [] {
        interpolate(zeros({1, 1, 4, 4}), {2, 2}, "nearest", true);
      },
      "interpolate: align_corners can only be set with mode \"bilinear\"");
  expect_error(
      [] {
        interpolate(zeros({1, 1, 4, 4}), {2, 2, 2});
      },
      "interpolate: size needs 2 values (H, W), got 3");
  expect_error(
      [] {
        interpolate(zeros({1, 1, 4, 4}), {0, 2});
      },
      "upsample_nearest2d: output size must be 2 positive values, got [0,2]");
  expect_error(
      [] {
        interpolate(zeros({1, 1, 4, 4}), 0.1);
      },
      "interpolate: scale factors 0.1 and 0.1 give an empty output for input [1,1,4,4]");
}

TEST(Registry, NnOpsAreRegistered) {
  for (const char* name : {"conv1d",
                           "conv2d",
                           "conv3d",
                           "conv_transpose1d",
                           "conv_transpose2d",
                           "conv_transpose3d",
                           "conv1d_weight_grad",
                           "conv2d_weight_grad",
                           "conv3d_weight_grad",
                           "max_pool1d",
                           "max_pool2d",
                           "adaptive_max_pool1d",
                           "adaptive_max_pool2d",
                           "max_pool_backward",
                           "max_pool_gather",
                           "avg_pool1d",
                           "avg_pool2d",
                           "avg_pool2d_backward",
                           "adaptive_avg_pool1d",
                           "adaptive_avg_pool2d_backward",
                           "softmax",
                           "log_softmax",
                           "embedding",
                           "embedding_backward",
                           "pad",
                           "pad_backward",
                           "upsample_nearest2d",
                           "upsample_bilinear2d_backward"}) {
    EXPECT_NE(find_op(name), nullptr) << name;
  }
}

}  // namespace
}  // namespace tessera
