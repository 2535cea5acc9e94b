// Register-tiled float32 convolution (see conv_tiles.h).
#include "conv_tiles.h"

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The loops over a tile's pixels and channel blocks are unrolled before GCC decides where the
// accumulators live: left as loops, it keeps the accumulator arrays in memory and stores
// every one of them on each step (store-bound at a third of the multiply-add rate).
#define TESSERA_UNROLL _Pragma("GCC unroll 16")

namespace tessera::lite {

namespace {

// Outputs per block of the packed dense layers, as vectors of 16: 1, 2, 4 or 8 (a block of
// 3 is computed as 4 with zero weights: fewer copies of the loops).
int64_t fc_block_vectors(int64_t left) {
  const int64_t v = (std::min<int64_t>(left, 128) + 15) / 16;
  return v <= 1 ? 1 : v <= 2 ? 2 : v <= 4 ? 4 : 8;
}

// Windows whose rows hold at most 4 values (a first layer: 3 taps of one channel) give each
// window row a quad of its own, padded with a weight of 0: a pixel's row is then one 4-byte
// read of the input (x..x+3; the value past the row's taps meets the 0), where packing the
// rows end to end needs a copy per row and quads that straddle rows.
bool row_quads(const ConvTileArgs& a) { return int64_t{a.KW} * a.C <= 4; }

// The rows and columns of the input that the output map reads, padding included.
// Each row holds `left` padding pixels, then `inside` input pixels (as many as the windows
// reach), then padding.
struct PaddedImage {
  int64_t rows, pixels, row_bytes;  // row_bytes: of the int8 form
  int64_t left, inside;
};
PaddedImage padded_image(const ConvTileArgs& a) {
  const int64_t pixels = int64_t{a.OW - 1} * a.sw + int64_t{a.KW - 1} * a.dw + 1;
  const int64_t left = std::min<int64_t>(a.pl, pixels);
  return {int64_t{a.OH - 1} * a.sh + int64_t{a.KH - 1} * a.dh + 1, pixels,
          (pixels * a.C + 4 + 63) / 64 * 64, left,
          std::max<int64_t>(0, std::min<int64_t>(a.W, pixels - left))};
}

// The packed width of O outputs: their blocks' widths, summed.
int64_t fc_packed_width(int64_t O) {
  int64_t total = 0;
  for (int64_t o0 = 0; o0 < O; o0 += 128) total += 16 * fc_block_vectors(O - o0);
  return total;
}

}  // namespace

#if defined(__x86_64__)
// GCC 12 takes the undefined vectors inside some AVX-512 intrinsics (_mm512_undefined_*)
// for uninitialized reads once they are inlined here; they are not reads.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

// P output pixels (consecutive along the row) by B blocks of 16 channels starting at o0;
// `mask` selects the valid channels of the last block.
template <int P, int B>
__attribute__((target("avx512f"))) void tile(const ConvTileArgs& a, const float* x, const float* w,
                                             const float* bias, const float* zeros, float* y, int n,
                                             int oh, int ow, int o0, __mmask16 last_mask) {
  __m512 acc[P][B];
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    __m512 init = bias ? _mm512_maskz_loadu_ps(m, bias + o0 + 16 * b) : _mm512_setzero_ps();
    TESSERA_UNROLL for (int p = 0; p < P; ++p) acc[p][b] = init;
  }
  for (int kh = 0; kh < a.KH; ++kh) {
    const int ih = oh * a.sh - a.pt + kh * a.dh;
    const bool row_inside = ih >= 0 && ih < a.H;
    // Where every tap of the row is inside (and contiguous: no dilation), the row's KW * C
    // values are one run in the input and in the weights: one pass of KW * C steps instead of
    // KW passes of C (a first layer's C = 1 leaves little work to each pass).
    const int iw_first = ow * a.sw - a.pl, iw_end = iw_first + (P - 1) * a.sw + a.KW - 1;
    const bool merged = row_inside && a.dw == 1 && iw_first >= 0 && iw_end < a.W;
    const int passes = merged ? 1 : a.KW, steps = merged ? a.KW * a.C : a.C;
    for (int kw = 0; kw < passes; ++kw) {
      const float* in[P];
      const int iw0 = ow * a.sw - a.pl + kw * a.dw, iw_last = iw0 + (P - 1) * a.sw;
      if (row_inside && iw0 >= 0 && iw_last < a.W) {  // every pixel's tap inside: no checks
        const float* first = x + ((int64_t{n} * a.H + ih) * a.W + iw0) * a.C;
        TESSERA_UNROLL for (int p = 0; p < P; ++p) in[p] = first + int64_t{p} * a.sw * a.C;
      } else {
        TESSERA_UNROLL for (int p = 0; p < P; ++p) {
          const int iw = iw0 + p * a.sw;
          in[p] = !row_inside || iw < 0 || iw >= a.W
                      ? zeros
                      : x + ((int64_t{n} * a.H + ih) * a.W + iw) * a.C;
        }
      }
      const float* wk = w + (int64_t{kh} * a.KW + kw) * a.C * a.O + o0;
      for (int c = 0; c < steps; ++c) {
        __m512 wv[B];
        TESSERA_UNROLL for (int b = 0; b < B; ++b) {
          __mmask16 m = b == B - 1 ? last_mask : 0xffff;
          wv[b] = _mm512_maskz_loadu_ps(m, wk + int64_t{c} * a.O + 16 * b);
        }
        TESSERA_UNROLL for (int p = 0; p < P; ++p) {
          const __m512 v = _mm512_set1_ps(in[p][c]);
          TESSERA_UNROLL for (int b = 0; b < B; ++b) acc[p][b] =
              _mm512_fmadd_ps(v, wv[b], acc[p][b]);
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  TESSERA_UNROLL for (int p = 0; p < P; ++p) {
    float* out = y + int64_t{ow + p} * a.O + o0;  // y: the output row
    TESSERA_UNROLL for (int b = 0; b < B; ++b) {
      __m512 v = acc[p][b];
      if (a.relu || a.relu6) v = _mm512_max_ps(v, zero);
      if (a.relu6) v = _mm512_min_ps(v, six);
      _mm512_mask_storeu_ps(out + 16 * b, b == B - 1 ? last_mask : 0xffff, v);
    }
  }
}

template <int P>
void tiles_of_row(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                  const float* zeros, float* y, int n, int oh, int ow) {
  for (int o0 = 0; o0 < a.O; o0 += 64) {
    const int left = std::min(64, a.O - o0), blocks = (left + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (left - 16 * (blocks - 1))) - 1);
    switch (blocks) {
      case 1:
        tile<P, 1>(a, x, w, bias, zeros, y, n, oh, ow, o0, mask);
        break;
      case 2:
        tile<P, 2>(a, x, w, bias, zeros, y, n, oh, ow, o0, mask);
        break;
      case 3:
        tile<P, 3>(a, x, w, bias, zeros, y, n, oh, ow, o0, mask);
        break;
      default:
        tile<P, 4>(a, x, w, bias, zeros, y, n, oh, ow, o0, mask);
        break;
    }
  }
}

// Runs of n bytes, any n: whole vectors, then one masked (a per-byte loop costs more than
// the copy for a first layer's three-value rows).
struct FlipCopy {  // int8 -> uint8, x + 128
  __attribute__((target("avx512f,avx512bw,bmi2"), always_inline)) void operator()(
      uint8_t* to, const int8_t* from, int64_t n) const {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
      _mm512_storeu_si512(to + j, _mm512_xor_si512(_mm512_loadu_si512(from + j), flip));
    }
    if (j < n) {
      const __mmask64 m = _bzhi_u64(~0ull, static_cast<unsigned>(n - j));
      _mm512_mask_storeu_epi8(to + j, m,
                              _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, from + j), flip));
    }
  }
};
struct Fill {
  __attribute__((target("avx512f,avx512bw,bmi2"), always_inline)) void operator()(uint8_t* to,
                                                                                  uint8_t value,
                                                                                  int64_t n) const {
    const __m512i v = _mm512_set1_epi8(static_cast<char>(value));
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) _mm512_storeu_si512(to + j, v);
    if (j < n) _mm512_mask_storeu_epi8(to + j, _bzhi_u64(~0ull, static_cast<unsigned>(n - j)), v);
  }
};

struct CopyBytes {
  __attribute__((target("avx512f,avx512bw,bmi2"), always_inline)) void operator()(
      uint8_t* to, const uint8_t* from, int64_t n) const {
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) _mm512_storeu_si512(to + j, _mm512_loadu_si512(from + j));
    if (j < n) {
      const __mmask64 m = _bzhi_u64(~0ull, static_cast<unsigned>(n - j));
      _mm512_mask_storeu_epi8(to + j, m, _mm512_maskz_loadu_epi8(m, from + j));
    }
  }
};

// The int8 padded image (PaddedImage) as uint8 (x + 128; padded taps: the zero point +
// 128), each row with 4 bytes to spare (a window row read as one quad) and 64-byte aligned.
size_t patch_bytes(const ConvTileArgs& a) {
  return static_cast<size_t>(((a.O <= 32 ? 14 : kTilePixels) * int8_quad_stride(a) + 63) / 64 * 64);
}
const uint8_t* image_in(const ConvTileArgs& a, const void* scratch) {
  return static_cast<const uint8_t*>(scratch) + patch_bytes(a);
}

// One patch per pixel, `stride` long, copied from the padded image (prepare_int8_image):
// the window's values as uint8, x + 128, the tiles correcting for the offset through the
// bias. Not inlined: one copy serves every tile.
__attribute__((target("avx512f,avx512bw,bmi2"), noinline, noclone)) void gather_quads(
    const Int8TileArgs& q, const uint8_t* __restrict image, int oh, int ow, int count,
    int64_t stride, uint8_t* __restrict patches) {
  const int C = q.g.C, KH = q.g.KH, KW = q.g.KW, sw = q.g.sw, dw = q.g.dw;
  const uint8_t pad = static_cast<uint8_t>(q.x_zero + 128);
  const int64_t K = int64_t{KH} * KW * C, row_bytes = padded_image(q.g).row_bytes;
  const uint8_t* window = image + int64_t{oh} * q.g.sh * row_bytes + int64_t{ow} * sw * C;
  const int64_t pixel_step = int64_t{sw} * C, row_step = int64_t{q.g.dh} * row_bytes;
  const bool quads = row_quads(q.g);
  for (int p = 0; p < count; ++p, window += pixel_step) {
    uint8_t* at = patches + p * stride;
    if (quads && dw == 1) {  // each window row in one quad (the image has 4 bytes to spare)
      for (int kh = 0; kh < KH; ++kh) std::memcpy(at + 4 * kh, window + kh * row_step, 4);
    } else if (dw == 1) {
      for (int kh = 0; kh < KH; ++kh) CopyBytes()(at + kh * KW * C, window + kh * row_step, KW * C);
      Fill()(at + K, pad, static_cast<int>(stride - K));  // weights there are 0
    } else {
      Fill()(at, pad, static_cast<int>(stride));
      for (int kh = 0; kh < KH; ++kh) {
        for (int kw = 0; kw < KW; ++kw) {
          std::memcpy(at + (quads ? 4 * kh + kw * C : (kh * KW + kw) * C),
                      window + kh * row_step + int64_t{kw} * dw * C, C);
        }
      }
    }
  }
}

// Requantizes one vector of int32 sums (16 channels, multipliers `s`) and stores it. By
// value: an accumulator array passed by reference would be kept in memory throughout.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline void store_int8(
    const Int8TileArgs& q, __m512i acc, __m512 s, int8_t* out, __mmask16 m) {
  __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), s);
  // Round half away from zero, as the portable kernels do.
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(r), _mm512_set1_epi32(INT32_MIN));
  const __m512 half =
      _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(0.5f))));
  __m512i v =
      _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_add_ps(r, half)), _mm512_set1_epi32(q.y_zero));
  v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(q.lo)), _mm512_set1_epi32(q.hi));
  _mm_mask_storeu_epi8(out, m, _mm512_cvtepi32_epi8(v));
}

// Stores a tile of P pixels by B blocks of 16 channels (a macro: see store_int8).
#define TESSERA_STORE_INT8_TILE()                                            \
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {                               \
    const __mmask16 m = b == B - 1 ? last_mask : 0xffff;                     \
    const __m512 s = _mm512_maskz_loadu_ps(m, scale + o0 + 16 * b);          \
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {                             \
      store_int8(q, acc[p][b], s, y + int64_t{ow + p} * q.g.O + o0 + 16 * b, \
                 m); /* y: the output row */                                 \
    }                                                                        \
  }

// The int32 sums of a tile of P pixels by B blocks of 16 channels into acc[P][B]: bias -
// correction, plus the patches' quads against the packed weights (a macro: see store_int8).
#define TESSERA_VNNI_SUMS()                                                               \
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {                                            \
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;                                        \
    __m512i init =                                                                        \
        bias ? _mm512_maskz_loadu_epi32(m, bias + o0 + 16 * b) : _mm512_setzero_si512();  \
    init = _mm512_sub_epi32(init, _mm512_maskz_loadu_epi32(m, correction + o0 + 16 * b)); \
    TESSERA_UNROLL for (int p = 0; p < P; ++p) acc[p][b] = init;                          \
  }                                                                                       \
  const __mmask64 last_quads = _pdep_u64(last_mask, 0x1111111111111111ull) * 0xfu;        \
  for (int64_t k4 = 0; k4 < quads; ++k4) {                                                \
    const int8_t* wk = w + (k4 * O + o0) * 4;                                             \
    __m512i wv[B];                                                                        \
    TESSERA_UNROLL for (int b = 0; b < B; ++b) {                                          \
      wv[b] = _mm512_maskz_loadu_epi8(b == B - 1 ? last_quads : ~0ull, wk + 64 * b);      \
    }                                                                                     \
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {                                          \
      int32_t quad;                                                                       \
      std::memcpy(&quad, patches + p * stride + 4 * k4, sizeof quad);                     \
      const __m512i v = _mm512_set1_epi32(quad);                                          \
      TESSERA_UNROLL for (int b = 0; b < B; ++b) {                                        \
        acc[p][b] = _mm512_dpbusd_epi32(acc[p][b], v, wv[b]);                             \
      }                                                                                   \
    }                                                                                     \
  }

// The same with VNNI: four uint8 patch values against four int8 weights per 32-bit lane in
// one vpdpbusd (64 products per instruction, no widening, no separate add). Sums start at
// bias - correction, correction[o] = (x_zero + 128) * sum of channel o's weights.
template <int P, int B>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void tile_vnni(
    const Int8TileArgs& q, const uint8_t* patches, int64_t stride, const int8_t* w,
    const int32_t* bias, const int32_t* correction, const float* scale, int8_t* y, int ow, int o0,
    __mmask16 last_mask) {
  const int64_t quads = stride / 4, O = q.g.O;
  __m512i acc[P][B];
  TESSERA_VNNI_SUMS()
  TESSERA_STORE_INT8_TILE()
}

// A tile of 2 x Cols pixels (output rows 2ph and 2ph + 1, columns ow..ow + Cols - 1; the
// patches in that order) pooled 2x2 before requantizing: Cols / 2 outputs of the pooled row
// `y`, from pooled column ow / 2.
template <int Cols, int B>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void tile_vnni_pooled(
    const Int8TileArgs& q, const uint8_t* patches, int64_t stride, const int8_t* w,
    const int32_t* bias, const int32_t* correction, const float* scale, int8_t* y, int ow, int o0,
    __mmask16 last_mask) {
  constexpr int P = 2 * Cols;
  const int64_t quads = stride / 4, O = q.g.O;
  __m512i acc[P][B];
  TESSERA_VNNI_SUMS()
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {
    const __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    const __m512 s = _mm512_maskz_loadu_ps(m, scale + o0 + 16 * b);
    TESSERA_UNROLL for (int j = 0; j < Cols / 2; ++j) {
      const __m512i top = _mm512_max_epi32(acc[2 * j][b], acc[2 * j + 1][b]);
      const __m512i bottom = _mm512_max_epi32(acc[Cols + 2 * j][b], acc[Cols + 2 * j + 1][b]);
      store_int8(q, _mm512_max_epi32(top, bottom), s, y + int64_t{ow / 2 + j} * O + o0 + 16 * b, m);
    }
  }
}

// P pixels of a row: their patches once, then every block of up to 64 channels.
template <int P>
void int8_tiles_of_row(const Int8TileArgs& q, const uint8_t* image, const Int8Weights& w,
                       const int32_t* bias, uint8_t* patches, int8_t* y, int oh, int ow) {
  const int O = q.g.O;
  const int64_t stride = int8_quad_stride(q.g);
  gather_quads(q, image, oh, ow, P, stride, patches);
  const auto* packed = static_cast<const int8_t*>(w.packed);
  for (int o0 = 0; o0 < O; o0 += 64) {
    const int left = std::min(64, O - o0), blocks = (left + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (left - 16 * (blocks - 1))) - 1);
    switch (blocks) {
#define TESSERA_VNNI_TILE(B)                                                                   \
  case B:                                                                                      \
    tile_vnni<P, B>(q, patches, stride, packed, bias, w.correction, w.scale, y, ow, o0, mask); \
    break;
      TESSERA_VNNI_TILE(1)
      TESSERA_VNNI_TILE(2)
      TESSERA_VNNI_TILE(3)
      default:
        TESSERA_VNNI_TILE(4)
#undef TESSERA_VNNI_TILE
    }
  }
}

// One block of NB * 16 outputs of a packed fully connected layer, for one row of inputs.
template <int NB>
__attribute__((target("avx512f"))) void fc_block(const float* x, int64_t I, const float* wb,
                                                 const float* bias, int64_t left, bool relu,
                                                 bool relu6, float* y) {
  __m512 acc[NB];
  TESSERA_UNROLL for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
  for (int64_t i = 0; i < I; ++i) {
    const __m512 v = _mm512_set1_ps(x[i]);
    const float* wi = wb + i * (NB * 16);
    TESSERA_UNROLL for (int b = 0; b < NB; ++b) {
      acc[b] = _mm512_fmadd_ps(v, _mm512_loadu_ps(wi + 16 * b), acc[b]);
    }
  }
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  TESSERA_UNROLL for (int b = 0; b < NB; ++b) {
    const int64_t n = std::clamp<int64_t>(left - 16 * b, 0, 16);
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
    __m512 v = acc[b];
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + 16 * b));
    if (relu || relu6) v = _mm512_max_ps(v, zero);
    if (relu6) v = _mm512_min_ps(v, six);
    _mm512_mask_storeu_ps(y + 16 * b, m, v);
  }
}

// One block of NB * 16 outputs of the int8 packed dense layer, for one row.
template <int NB>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void fc_int8_block(
    const Int8TileArgs& q, const uint8_t* row, int64_t quads, const int8_t* wb,
    const int32_t* correction, const float* scale, const int32_t* bias, int64_t left, int8_t* y) {
  __m512i acc[NB];
  TESSERA_UNROLL for (int b = 0; b < NB; ++b) {
    const int64_t n = std::clamp<int64_t>(left - 16 * b, 0, 16);
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
    const __m512i start =
        bias ? _mm512_maskz_loadu_epi32(m, bias + 16 * b) : _mm512_setzero_si512();
    acc[b] = _mm512_sub_epi32(start, _mm512_maskz_loadu_epi32(m, correction + 16 * b));
  }
  for (int64_t k4 = 0; k4 < quads; ++k4) {
    int32_t quad;
    std::memcpy(&quad, row + 4 * k4, sizeof quad);
    const __m512i v = _mm512_set1_epi32(quad);
    const int8_t* wk = wb + k4 * (NB * 64);
    TESSERA_UNROLL for (int b = 0; b < NB; ++b) {
      acc[b] = _mm512_dpbusd_epi32(acc[b], v, _mm512_loadu_si512(wk + 64 * b));
    }
  }
  TESSERA_UNROLL for (int b = 0; b < NB; ++b) {
    const int64_t n = std::clamp<int64_t>(left - 16 * b, 0, 16);
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
    if (m) store_int8(q, acc[b], _mm512_maskz_loadu_ps(m, scale + 16 * b), y + 16 * b, m);
  }
}

}  // namespace

bool conv_tiles_supported() { return kernel_isa() == Isa::avx512; }
bool conv_vnni_supported() { return conv_tiles_supported() && kernel_vnni(); }

void conv2d_int8_tiles_row(const Int8TileArgs& q, const Int8Weights& w, const int32_t* bias,
                           void* scratch, int oh, int8_t* y_row) {
  // Seven pixels (rows of 14 and 28 split evenly): 7 x 4 sums and 4 weight vectors fill the
  // 32 registers (measured faster than 6 pixels and a pair, 7.3 against 7.8 us on conv1).
  constexpr int P = 7;
  auto* patches = static_cast<uint8_t*>(scratch);
  const uint8_t* image = image_in(q.g, scratch);
  int ow = 0;
  if (q.g.O <= 32) {  // up to two vectors of channels: 14 pixels' sums fit the registers
    const int64_t stride = int8_quad_stride(q.g);
    const int blocks = (q.g.O + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (q.g.O - 16 * (blocks - 1))) - 1);
    const auto* packed = static_cast<const int8_t*>(w.packed);
    for (; ow + 14 <= q.g.OW; ow += 14) {
      gather_quads(q, image, oh, ow, 14, stride, patches);
      if (blocks == 1) {
        tile_vnni<14, 1>(q, patches, stride, packed, bias, w.correction, w.scale, y_row, ow, 0,
                         mask);
      } else {
        tile_vnni<14, 2>(q, patches, stride, packed, bias, w.correction, w.scale, y_row, ow, 0,
                         mask);
      }
    }
  }
  for (; ow + P <= q.g.OW; ow += P) {
    int8_tiles_of_row<P>(q, image, w, bias, patches, y_row, oh, ow);
  }
  for (; ow < q.g.OW; ++ow) int8_tiles_of_row<1>(q, image, w, bias, patches, y_row, oh, ow);
}

void conv2d_int8_tiles_pooled_row(const Int8TileArgs& q, const Int8Weights& w, const int32_t* bias,
                                  void* scratch, int ph, int8_t* y_row) {
  auto* patches = static_cast<uint8_t*>(scratch);
  const uint8_t* image = image_in(q.g, scratch);
  const auto* packed = static_cast<const int8_t*>(w.packed);
  const int64_t stride = int8_quad_stride(q.g);
  const int O = q.g.O, width = q.g.OW / 2 * 2;  // an odd last column is not pooled
  // Patches of `cols` columns of both rows, the top row's first.
  auto gather = [&](int ow, int cols) {
    gather_quads(q, image, 2 * ph, ow, cols, stride, patches);
    gather_quads(q, image, 2 * ph + 1, ow, cols, stride, patches + cols * stride);
  };
  int ow = 0;
  if (O > 16 && O <= 32) {  // 2 x 4 pixels by two vectors of channels
    const __mmask16 mask = static_cast<__mmask16>((1u << (O - 16)) - 1);
    for (; ow + 4 <= width; ow += 4) {
      gather(ow, 4);
      tile_vnni_pooled<4, 2>(q, patches, stride, packed, bias, w.correction, w.scale, y_row, ow, 0,
                             mask);
    }
  }
  for (; ow < width; ow += 2) {  // 2 x 2 pixels by up to four vectors of channels
    gather(ow, 2);
    for (int o0 = 0; o0 < O; o0 += 64) {
      const int left = std::min(64, O - o0), blocks = (left + 15) / 16;
      const __mmask16 mask = static_cast<__mmask16>((1u << (left - 16 * (blocks - 1))) - 1);
      switch (blocks) {
#define TESSERA_VNNI_POOLED_TILE(B)                                                                \
  case B:                                                                                          \
    tile_vnni_pooled<2, B>(q, patches, stride, packed, bias, w.correction, w.scale, y_row, ow, o0, \
                           mask);                                                                  \
    break;
        TESSERA_VNNI_POOLED_TILE(1)
        TESSERA_VNNI_POOLED_TILE(2)
        TESSERA_VNNI_POOLED_TILE(3)
        default:
          TESSERA_VNNI_POOLED_TILE(4)
#undef TESSERA_VNNI_POOLED_TILE
      }
    }
  }
}

void conv2d_tiles_row(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                      const float* zeros, int n, int oh, float* y_row) {
  int ow = 0;
  if (a.O <= 32) {  // up to two vectors of channels: 14 pixels' sums fit the registers
    const int blocks = (a.O + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (a.O - 16 * (blocks - 1))) - 1);
    for (; ow + 14 <= a.OW; ow += 14) {
      if (blocks == 1) {
        tile<14, 1>(a, x, w, bias, zeros, y_row, n, oh, ow, 0, mask);
      } else {
        tile<14, 2>(a, x, w, bias, zeros, y_row, n, oh, ow, 0, mask);
      }
    }
  }
  for (; ow + kTilePixels <= a.OW; ow += kTilePixels)
    tiles_of_row<kTilePixels>(a, x, w, bias, zeros, y_row, n, oh, ow);
  for (; ow < a.OW; ++ow) tiles_of_row<1>(a, x, w, bias, zeros, y_row, n, oh, ow);
}

void fully_connected_packed(const float* x, int64_t rows, int64_t I, int64_t O, const float* packed,
                            const float* bias, bool relu, bool relu6, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o0 = 0; o0 < O; o0 += 128) {
      const int64_t left = std::min<int64_t>(128, O - o0);
      const float* wb = packed + I * o0;
      const float* b = bias ? bias + o0 : nullptr;
      float* out = y + r * O + o0;
      switch (fc_block_vectors(left)) {
        case 1:
          fc_block<1>(x + r * I, I, wb, b, left, relu, relu6, out);
          break;
        case 2:
          fc_block<2>(x + r * I, I, wb, b, left, relu, relu6, out);
          break;
        case 4:
          fc_block<4>(x + r * I, I, wb, b, left, relu, relu6, out);
          break;
        default:
          fc_block<8>(x + r * I, I, wb, b, left, relu, relu6, out);
          break;
      }
    }
  }
}

void fully_connected_int8_packed(const Int8TileArgs& q, const int8_t* x, int64_t rows, int64_t I,
                                 int64_t O, const int8_t* packed, const int32_t* correction,
                                 const float* scale, const int32_t* bias, uint8_t* row, int8_t* y) {
  const int64_t quads = (I + 3) / 4;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < I; ++i) row[i] = static_cast<uint8_t>(x[r * I + i] ^ 0x80);
    for (int64_t i = I; i < 4 * quads; ++i) row[i] = 0;  // weights there are 0
    for (int64_t o0 = 0; o0 < O; o0 += 128) {
      const int64_t left = std::min<int64_t>(128, O - o0);
      const int8_t* wb = packed + quads * 4 * o0;
      const int32_t* b = bias ? bias + o0 : nullptr;
      int8_t* out = y + r * O + o0;
      switch (fc_block_vectors(left)) {
        case 1:
          fc_int8_block<1>(q, row, quads, wb, correction + o0, scale + o0, b, left, out);
          break;
        case 2:
          fc_int8_block<2>(q, row, quads, wb, correction + o0, scale + o0, b, left, out);
          break;
        case 4:
          fc_int8_block<4>(q, row, quads, wb, correction + o0, scale + o0, b, left, out);
          break;
        default:
          fc_int8_block<8>(q, row, quads, wb, correction + o0, scale + o0, b, left, out);
          break;
      }
    }
  }
}

__attribute__((cold)) size_t int8_scratch_bytes(const ConvTileArgs& a) {
  if (a.OH < 1 || a.OW < 1) return patch_bytes(a);
  const PaddedImage p = padded_image(a);
  int64_t bytes = 0;  // sizes from hostile files: the caller refuses anything past 2^40
  if (__builtin_mul_overflow(p.rows, p.row_bytes, &bytes) || bytes > (int64_t{1} << 40)) {
    return SIZE_MAX;
  }
  return patch_bytes(a) + static_cast<size_t>(bytes);
}

__attribute__((target("avx512f,avx512bw,bmi2"))) void prepare_int8_image(const Int8TileArgs& q,
                                                                         const int8_t* x, int n,
                                                                         void* scratch) {
  if (q.g.OH < 1 || q.g.OW < 1) return;
  const PaddedImage p = padded_image(q.g);
  const int64_t C = q.g.C, H = q.g.H, W = q.g.W, row_bytes = p.row_bytes;
  const uint8_t pad = static_cast<uint8_t>(q.x_zero + 128);
  const int64_t left = p.left, inside = p.inside;
  auto* image = static_cast<uint8_t*>(scratch) + patch_bytes(q.g);
  for (int64_t r = 0; r < p.rows; ++r) {
    uint8_t* to = image + r * row_bytes;
    const int64_t ih = r - q.g.pt;
    if (ih < 0 || ih >= H) {
      Fill()(to, pad, row_bytes);
      continue;
    }
    Fill()(to, pad, left * C);
    FlipCopy()(to + left * C, x + (n * H + ih) * W * C, inside * C);
    Fill()(to + (left + inside) * C, pad, row_bytes - (left + inside) * C);
  }
}

#pragma GCC diagnostic pop
#else

bool conv_tiles_supported() { return false; }
void fully_connected_int8_packed(const Int8TileArgs&, const int8_t*, int64_t, int64_t, int64_t,
                                 const int8_t*, const int32_t*, const float*, const int32_t*,
                                 uint8_t*, int8_t*) {}
void fully_connected_packed(const float*, int64_t, int64_t, int64_t, const float*, const float*,
                            bool, bool, float*) {}
bool conv_vnni_supported() { return false; }
void conv2d_tiles_row(const ConvTileArgs&, const float*, const float*, const float*, const float*,
                      int, int, float*) {}
void conv2d_int8_tiles_row(const Int8TileArgs&, const Int8Weights&, const int32_t*, void*, int,
                           int8_t*) {}
void conv2d_int8_tiles_pooled_row(const Int8TileArgs&, const Int8Weights&, const int32_t*, void*,
                                  int, int8_t*) {}
size_t int8_scratch_bytes(const ConvTileArgs&) { return 0; }
void prepare_int8_image(const Int8TileArgs&, const int8_t*, int, void*) {}

#endif

__attribute__((cold)) size_t float_image_floats(const ConvTileArgs& a) {
  if (a.OH < 1 || a.OW < 1) return 0;
  const PaddedImage p = padded_image(a);
  if (p.rows > INT32_MAX || p.pixels > INT32_MAX) return SIZE_MAX;  // float_image_args' ints
  int64_t floats = 0;  // sizes from hostile files: the caller refuses anything past 2^38
  if (__builtin_mul_overflow(p.rows, p.pixels * a.C, &floats) || floats > (int64_t{1} << 38)) {
    return SIZE_MAX;
  }
  return static_cast<size_t>(floats);
}

__attribute__((cold)) ConvTileArgs float_image_args(const ConvTileArgs& a) {
  const PaddedImage p = padded_image(a);
  ConvTileArgs out = a;
  out.N = 1;
  out.H = static_cast<int>(p.rows);
  out.W = static_cast<int>(p.pixels);
  out.pt = out.pl = 0;
  return out;
}

__attribute__((cold)) void prepare_float_image(const ConvTileArgs& a, const float* x, int n,
                                               float* image) {
  if (a.OH < 1 || a.OW < 1) return;
  const PaddedImage p = padded_image(a);
  const int64_t C = a.C, H = a.H, W = a.W, row = p.pixels * C;
  const int64_t left = p.left, inside = p.inside;
  // memset and memcpy: the library stays small, and zero bytes are 0.0f.
  for (int64_t r = 0; r < p.rows; ++r) {
    float* to = image + r * row;
    const int64_t ih = r - a.pt, copied = ih < 0 || ih >= H ? 0 : inside;
    std::memset(to, 0, static_cast<size_t>(row) * sizeof(float));
    if (copied > 0) {
      std::memcpy(to + left * C, x + (n * H + ih) * W * C,
                  static_cast<size_t>(copied * C) * sizeof(float));
    }
  }
}

size_t fc_packed_floats(int64_t I, int64_t O) {
  return static_cast<size_t>(I * fc_packed_width(O));
}

// Once, at allocation.
__attribute__((cold)) void pack_fc_weights(const float* w, int64_t I, int64_t O, float* packed) {
  for (int64_t o0 = 0; o0 < O; o0 += 128) {
    const int64_t width = 16 * fc_block_vectors(O - o0);
    float* block = packed + I * o0;
    for (int64_t i = 0; i < I; ++i) {
      for (int64_t j = 0; j < width; ++j) {
        block[i * width + j] = o0 + j < O ? w[(o0 + j) * I + i] : 0.0f;
      }
    }
  }
}

size_t fc_int8_packed_bytes(int64_t I, int64_t O) {
  return static_cast<size_t>((I + 3) / 4 * 4 * fc_packed_width(O));
}

// Once, at allocation.
__attribute__((cold)) void pack_fc_int8(const int8_t* w, int64_t I, int64_t O, int32_t x_zero,
                                        int8_t* packed, int32_t* correction) {
  const int64_t quads = (I + 3) / 4;
  for (int64_t o = 0; o < O; ++o) {
    int64_t sum = 0;
    for (int64_t i = 0; i < I; ++i) sum += w[o * I + i];
    correction[o] = static_cast<int32_t>((x_zero + 128) * sum);
  }
  for (int64_t o0 = 0; o0 < O; o0 += 128) {
    const int64_t width = 16 * fc_block_vectors(O - o0);
    int8_t* block = packed + quads * 4 * o0;
    for (int64_t k4 = 0; k4 < quads; ++k4) {
      for (int64_t j = 0; j < width; ++j) {
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t o = o0 + j, i = 4 * k4 + t;
          block[(k4 * width + j) * 4 + t] = o < O && i < I ? w[o * I + i] : int8_t{0};
        }
      }
    }
  }
}

int64_t int8_quad_stride(const ConvTileArgs& a) {
  if (row_quads(a)) return int64_t{a.KH} * 4;
  const int64_t k = int64_t{a.KH} * a.KW * a.C;
  return (k + 3) / 4 * 4;
}

size_t int8_packed_bytes(const ConvTileArgs& a) {
  return static_cast<size_t>(int8_quad_stride(a) * a.O);
}

// Once, at allocation.
__attribute__((cold)) void pack_int8_weights(const ConvTileArgs& a, const int8_t* hwio,
                                             int32_t x_zero, int8_t* packed, int32_t* correction) {
  const int64_t K = int64_t{a.KH} * a.KW * a.C, quads = int8_quad_stride(a) / 4;
  for (int o = 0; o < a.O; ++o) {
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += hwio[k * a.O + o];
    correction[o] = static_cast<int32_t>((x_zero + 128) * sum);
  }
  const int64_t run = int64_t{a.KW} * a.C;
  for (int64_t k4 = 0; k4 < quads; ++k4) {  // [quads, O, 4]
    for (int o = 0; o < a.O; ++o) {
      for (int j = 0; j < 4; ++j) {
        // Row quads: quad k4 is window row k4, its values then zeros; else K values in order.
        const int64_t k = row_quads(a) ? (j < run ? k4 * run + j : K) : 4 * k4 + j;
        packed[(k4 * a.O + o) * 4 + j] = k < K ? hwio[k * a.O + o] : int8_t{0};
      }
    }
  }
}

}  // namespace tessera::lite
