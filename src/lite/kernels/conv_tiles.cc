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

#if defined(__x86_64__)
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
    for (int kw = 0; kw < a.KW; ++kw) {
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
      for (int c = 0; c < a.C; ++c) {
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
    float* out = y + ((int64_t{n} * a.OH + oh) * a.OW + ow + p) * a.O + o0;
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

// One patch per pixel: the window's values, `stride` long. The pair kernels take int16 with
// the zero point removed (padded taps 0); the VNNI kernels take uint8, x + 128 (padded taps:
// the zero point + 128; gather_quads), and correct for the offset through the bias.
void gather_pairs(const Int8TileArgs& q, const int8_t* __restrict x, int n, int oh, int ow,
                  int count, int64_t stride, int16_t* __restrict patches) {
  // Locals, not q's fields, in the loops: int8 pointers may alias anything, q included.
  const int C = q.g.C, H = q.g.H, W = q.g.W, KH = q.g.KH, KW = q.g.KW;
  const int sh = q.g.sh, sw = q.g.sw, dh = q.g.dh, dw = q.g.dw, pt = q.g.pt, pl = q.g.pl;
  const int16_t zero = static_cast<int16_t>(q.x_zero);
  const int64_t K = int64_t{KH} * KW * C;
  for (int p = 0; p < count; ++p) {
    int16_t* __restrict at = patches + p * stride;
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = oh * sh - pt + kh * dh, iw0 = (ow + p) * sw - pl;
      if (dw == 1 && ih >= 0 && ih < H && iw0 >= 0 && iw0 + KW <= W) {
        // The window's row lies inside the input: one contiguous run of KW * C values.
        const int8_t* __restrict in = x + ((int64_t{n} * H + ih) * W + iw0) * C;
        for (int j = 0; j < KW * C; ++j) at[j] = static_cast<int16_t>(in[j] - zero);
        at += KW * C;
        continue;
      }
      for (int kw = 0; kw < KW; ++kw, at += C) {
        const int iw = (ow + p) * sw - pl + kw * dw;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
          for (int c = 0; c < C; ++c) at[c] = 0;
          continue;
        }
        const int8_t* __restrict in = x + ((int64_t{n} * H + ih) * W + iw) * C;
        for (int c = 0; c < C; ++c) at[c] = static_cast<int16_t>(in[c] - zero);
      }
    }
    if (stride > K) *at = 0;  // the even length's last value
  }
}

// Runs of n bytes, any n: whole vectors, then one masked (a per-byte loop costs more than
// the copy for a first layer's three-value rows).
struct FlipCopy {  // int8 -> uint8, x + 128
  __attribute__((target("avx512f,avx512bw,bmi2"), always_inline)) void operator()(
      uint8_t* to, const int8_t* from, int n) const {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    int j = 0;
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
                                                                                  int n) const {
    const __m512i v = _mm512_set1_epi8(static_cast<char>(value));
    int j = 0;
    for (; j + 64 <= n; j += 64) _mm512_storeu_si512(to + j, v);
    if (j < n) _mm512_mask_storeu_epi8(to + j, _bzhi_u64(~0ull, static_cast<unsigned>(n - j)), v);
  }
};

// The VNNI form's patches: gather_pairs' walk with vector copies.
__attribute__((target("avx512f,avx512bw,bmi2"))) void gather_quads(const Int8TileArgs& q,
                                                                   const int8_t* __restrict x,
                                                                   int n, int oh, int ow, int count,
                                                                   int64_t stride,
                                                                   uint8_t* __restrict patches) {
  const int C = q.g.C, H = q.g.H, W = q.g.W, KH = q.g.KH, KW = q.g.KW;
  const int sh = q.g.sh, sw = q.g.sw, dh = q.g.dh, dw = q.g.dw, pt = q.g.pt, pl = q.g.pl;
  const uint8_t pad = static_cast<uint8_t>(q.x_zero + 128);
  const int64_t K = int64_t{KH} * KW * C;
  for (int p = 0; p < count; ++p) {
    uint8_t* at = patches + p * stride;
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = oh * sh - pt + kh * dh, iw0 = (ow + p) * sw - pl;
      if (dw == 1 && ih >= 0 && ih < H && iw0 >= 0 && iw0 + KW <= W) {
        FlipCopy()(at, x + ((int64_t{n} * H + ih) * W + iw0) * C, KW * C);
        at += KW * C;
        continue;
      }
      for (int kw = 0; kw < KW; ++kw, at += C) {
        const int iw = (ow + p) * sw - pl + kw * dw;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
          Fill()(at, pad, C);
        } else {
          FlipCopy()(at, x + ((int64_t{n} * H + ih) * W + iw) * C, C);
        }
      }
    }
    Fill()(at, pad, static_cast<int>(stride - K));  // weights there are 0
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
#define TESSERA_STORE_INT8_TILE()                                                              \
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {                                                 \
    const __mmask16 m = b == B - 1 ? last_mask : 0xffff;                                       \
    const __m512 s = _mm512_maskz_loadu_ps(m, scale + o0 + 16 * b);                            \
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {                                               \
      store_int8(q, acc[p][b], s,                                                              \
                 y + ((int64_t{n} * q.g.OH + oh) * q.g.OW + ow + p) * q.g.O + o0 + 16 * b, m); \
    }                                                                                          \
  }

// P pixels' patches (pairs of 16-bit values) against B blocks of 16 channels starting at o0.
template <int P, int B>
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) void tile_pairs(
    const Int8TileArgs& q, const int16_t* patches, int64_t stride, const int16_t* w,
    const int32_t* bias, const float* scale, int8_t* y, int n, int oh, int ow, int o0,
    __mmask16 last_mask) {
  const int64_t pairs = stride / 2, O = q.g.O;
  __m512i acc[P][B];
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    __m512i init = bias ? _mm512_maskz_loadu_epi32(m, bias + o0 + 16 * b) : _mm512_setzero_si512();
    TESSERA_UNROLL for (int p = 0; p < P; ++p) acc[p][b] = init;
  }
  const __mmask32 last_pairs = _pdep_u32(last_mask, 0x55555555u) * 3u;
  for (int64_t k2 = 0; k2 < pairs; ++k2) {
    const int16_t* wk = w + (k2 * O + o0) * 2;
    __m512i wv[B];
    TESSERA_UNROLL for (int b = 0; b < B; ++b) {
      wv[b] = _mm512_maskz_loadu_epi16(b == B - 1 ? last_pairs : 0xffffffffu, wk + 32 * b);
    }
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {
      int32_t pair;
      std::memcpy(&pair, patches + p * stride + 2 * k2, sizeof pair);
      const __m512i v = _mm512_set1_epi32(pair);
      TESSERA_UNROLL for (int b = 0; b < B; ++b) {
        acc[p][b] = _mm512_add_epi32(acc[p][b], _mm512_madd_epi16(v, wv[b]));
      }
    }
  }
  TESSERA_STORE_INT8_TILE()
}

// The same with VNNI: four uint8 patch values against four int8 weights per 32-bit lane in
// one vpdpbusd (64 products per instruction, no widening, no separate add). Sums start at
// bias - correction, correction[o] = (x_zero + 128) * sum of channel o's weights.
template <int P, int B>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,bmi2"))) void tile_vnni(
    const Int8TileArgs& q, const uint8_t* patches, int64_t stride, const int8_t* w,
    const int32_t* bias, const int32_t* correction, const float* scale, int8_t* y, int n, int oh,
    int ow, int o0, __mmask16 last_mask) {
  const int64_t quads = stride / 4, O = q.g.O;
  __m512i acc[P][B];
  TESSERA_UNROLL for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    __m512i init = bias ? _mm512_maskz_loadu_epi32(m, bias + o0 + 16 * b) : _mm512_setzero_si512();
    init = _mm512_sub_epi32(init, _mm512_maskz_loadu_epi32(m, correction + o0 + 16 * b));
    TESSERA_UNROLL for (int p = 0; p < P; ++p) acc[p][b] = init;
  }
  const __mmask64 last_quads = _pdep_u64(last_mask, 0x1111111111111111ull) * 0xfu;
  for (int64_t k4 = 0; k4 < quads; ++k4) {
    const int8_t* wk = w + (k4 * O + o0) * 4;
    __m512i wv[B];
    TESSERA_UNROLL for (int b = 0; b < B; ++b) {
      wv[b] = _mm512_maskz_loadu_epi8(b == B - 1 ? last_quads : ~0ull, wk + 64 * b);
    }
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {
      int32_t quad;
      std::memcpy(&quad, patches + p * stride + 4 * k4, sizeof quad);
      const __m512i v = _mm512_set1_epi32(quad);
      TESSERA_UNROLL for (int b = 0; b < B; ++b) {
        acc[p][b] = _mm512_dpbusd_epi32(acc[p][b], v, wv[b]);
      }
    }
  }
  TESSERA_STORE_INT8_TILE()
}

// P pixels of a row: their patches once, then every block of up to 64 channels.
template <int P, bool kVnni>
void int8_tiles_of_row(const Int8TileArgs& q, const int8_t* x, const Int8Weights& w,
                       const int32_t* bias, void* patches, int8_t* y, int n, int oh, int ow) {
  const int O = q.g.O;
  const int64_t stride = kVnni ? int8_quad_stride(q.g) : int8_patch_stride(q.g);
  if constexpr (kVnni) {
    gather_quads(q, x, n, oh, ow, P, stride, static_cast<uint8_t*>(patches));
  } else {
    gather_pairs(q, x, n, oh, ow, P, stride, static_cast<int16_t*>(patches));
  }
  for (int o0 = 0; o0 < O; o0 += 64) {
    const int left = std::min(64, O - o0), blocks = (left + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (left - 16 * (blocks - 1))) - 1);
    auto run = [&]<int B>() {
      if constexpr (kVnni) {
        tile_vnni<P, B>(q, static_cast<const uint8_t*>(patches), stride,
                        static_cast<const int8_t*>(w.packed), bias, w.correction, w.scale, y, n, oh,
                        ow, o0, mask);
      } else {
        tile_pairs<P, B>(q, static_cast<const int16_t*>(patches), stride,
                         static_cast<const int16_t*>(w.packed), bias, w.scale, y, n, oh, ow, o0,
                         mask);
      }
    };
    switch (blocks) {
      case 1:
        run.template operator()<1>();
        break;
      case 2:
        run.template operator()<2>();
        break;
      case 3:
        run.template operator()<3>();
        break;
      default:
        run.template operator()<4>();
        break;
    }
  }
}

template <bool kVnni>
void int8_rows(const Int8TileArgs& q, const int8_t* x, const Int8Weights& w, const int32_t* bias,
               void* patches, int8_t* y) {
  // VNNI sums in place, leaving room for 7 x 4 accumulators; pairs need a temporary each.
  constexpr int P = kVnni ? 6 : 4;
  for (int n = 0; n < q.g.N; ++n) {
    for (int oh = 0; oh < q.g.OH; ++oh) {
      int ow = 0;
      for (; ow + P <= q.g.OW; ow += P) {
        int8_tiles_of_row<P, kVnni>(q, x, w, bias, patches, y, n, oh, ow);
      }
      if constexpr (kVnni) {  // pairs of pixels left: each weight load feeds two
        for (; ow + 2 <= q.g.OW; ow += 2) {
          int8_tiles_of_row<2, kVnni>(q, x, w, bias, patches, y, n, oh, ow);
        }
      }
      for (; ow < q.g.OW; ++ow) int8_tiles_of_row<1, kVnni>(q, x, w, bias, patches, y, n, oh, ow);
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
    const int64_t n = std::min<int64_t>(16, left - 16 * b);
    const __mmask16 m = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
    __m512 v = acc[b];
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + 16 * b));
    if (relu || relu6) v = _mm512_max_ps(v, zero);
    if (relu6) v = _mm512_min_ps(v, six);
    _mm512_mask_storeu_ps(y + 16 * b, m, v);
  }
}

}  // namespace

bool conv_tiles_supported() { return kernel_isa() == Isa::avx512; }
bool conv_vnni_supported() { return conv_tiles_supported() && kernel_vnni(); }

void conv2d_int8_tiles(const Int8TileArgs& q, const int8_t* x, const Int8Weights& w,
                       const int32_t* bias, void* patches, int8_t* y) {
  if (w.correction) {
    int8_rows<true>(q, x, w, bias, patches, y);
  } else {
    int8_rows<false>(q, x, w, bias, patches, y);
  }
}

void conv2d_tiles(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                  const float* zeros, float* y) {
  for (int n = 0; n < a.N; ++n) {
    for (int oh = 0; oh < a.OH; ++oh) {
      int ow = 0;
      for (; ow + kTilePixels <= a.OW; ow += kTilePixels)
        tiles_of_row<kTilePixels>(a, x, w, bias, zeros, y, n, oh, ow);
      for (; ow < a.OW; ++ow) tiles_of_row<1>(a, x, w, bias, zeros, y, n, oh, ow);
    }
  }
}

void fully_connected_packed(const float* x, int64_t rows, int64_t I, int64_t O, const float* packed,
                            const float* bias, bool relu, bool relu6, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o0 = 0; o0 < O; o0 += 128) {
      const int64_t left = std::min<int64_t>(128, O - o0);
      const float* wb = packed + I * o0;
      const float* b = bias ? bias + o0 : nullptr;
      float* out = y + r * O + o0;
      switch ((left + 15) / 16) {
#define TESSERA_FC_BLOCK(NB)                                   \
  case NB:                                                     \
    fc_block<NB>(x + r * I, I, wb, b, left, relu, relu6, out); \
    break;
        TESSERA_FC_BLOCK(1)
        TESSERA_FC_BLOCK(2)
        TESSERA_FC_BLOCK(3)
        TESSERA_FC_BLOCK(4)
        TESSERA_FC_BLOCK(5)
        TESSERA_FC_BLOCK(6)
        TESSERA_FC_BLOCK(7)
        TESSERA_FC_BLOCK(8)
#undef TESSERA_FC_BLOCK
      }
    }
  }
}

#else

bool conv_tiles_supported() { return false; }
void fully_connected_packed(const float*, int64_t, int64_t, int64_t, const float*, const float*,
                            bool, bool, float*) {}
bool conv_vnni_supported() { return false; }
void conv2d_tiles(const ConvTileArgs&, const float*, const float*, const float*, const float*,
                  float*) {}
void conv2d_int8_tiles(const Int8TileArgs&, const int8_t*, const Int8Weights&, const int32_t*,
                       void*, int8_t*) {}

#endif

size_t fc_packed_floats(int64_t I, int64_t O) {
  return static_cast<size_t>(I * ((O + 15) / 16 * 16));
}

void pack_fc_weights(const float* w, int64_t I, int64_t O, float* packed) {
  for (int64_t o0 = 0; o0 < O; o0 += 128) {
    const int64_t width = std::min<int64_t>(128, (O - o0 + 15) / 16 * 16);
    float* block = packed + I * o0;
    for (int64_t i = 0; i < I; ++i) {
      for (int64_t j = 0; j < width; ++j) {
        block[i * width + j] = o0 + j < O ? w[(o0 + j) * I + i] : 0.0f;
      }
    }
  }
}

int64_t int8_patch_stride(const ConvTileArgs& a) {
  const int64_t k = int64_t{a.KH} * a.KW * a.C;
  return k + (k & 1);
}

int64_t int8_quad_stride(const ConvTileArgs& a) {
  const int64_t k = int64_t{a.KH} * a.KW * a.C;
  return (k + 3) / 4 * 4;
}

size_t int8_scratch_bytes(const ConvTileArgs& a, bool vnni) {
  return vnni ? static_cast<size_t>(kTilePixels * int8_quad_stride(a))
              : static_cast<size_t>(4 * int8_patch_stride(a)) * sizeof(int16_t);
}

size_t int8_packed_bytes(const ConvTileArgs& a, bool vnni) {
  return vnni ? static_cast<size_t>(int8_quad_stride(a) * a.O)
              : static_cast<size_t>(int8_patch_stride(a) * a.O) * sizeof(int16_t);
}

void pack_int8_weights(const ConvTileArgs& a, const int8_t* hwio, int32_t x_zero, void* packed,
                       int32_t* correction) {
  const int64_t K = int64_t{a.KH} * a.KW * a.C;
  if (!correction) {  // [K / 2, O, 2] int16
    auto* out = static_cast<int16_t*>(packed);
    const int64_t pairs = int8_patch_stride(a) / 2;
    for (int64_t k2 = 0; k2 < pairs; ++k2) {
      for (int o = 0; o < a.O; ++o) {
        for (int j = 0; j < 2; ++j) {
          const int64_t k = 2 * k2 + j;
          out[(k2 * a.O + o) * 2 + j] = k < K ? hwio[k * a.O + o] : int16_t{0};
        }
      }
    }
    return;
  }
  auto* out = static_cast<int8_t*>(packed);  // [K / 4, O, 4] int8
  const int64_t quads = int8_quad_stride(a) / 4;
  for (int o = 0; o < a.O; ++o) {
    int64_t sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += hwio[k * a.O + o];
    correction[o] = static_cast<int32_t>((x_zero + 128) * sum);
  }
  for (int64_t k4 = 0; k4 < quads; ++k4) {
    for (int o = 0; o < a.O; ++o) {
      for (int j = 0; j < 4; ++j) {
        const int64_t k = 4 * k4 + j;
        out[(k4 * a.O + o) * 4 + j] = k < K ? hwio[k * a.O + o] : int8_t{0};
      }
    }
  }
}

}  // namespace tessera::lite
