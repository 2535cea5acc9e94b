// Register-tiled float32 convolution (see conv_tiles.h).
#include "conv_tiles.h"

#include "isa.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
  for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    __m512 init = bias ? _mm512_maskz_loadu_ps(m, bias + o0 + 16 * b) : _mm512_setzero_ps();
    for (int p = 0; p < P; ++p) acc[p][b] = init;
  }
  for (int kh = 0; kh < a.KH; ++kh) {
    const int ih = oh * a.sh - a.pt + kh * a.dh;
    for (int kw = 0; kw < a.KW; ++kw) {
      const float* in[P];
      for (int p = 0; p < P; ++p) {
        const int iw = (ow + p) * a.sw - a.pl + kw * a.dw;
        in[p] = ih < 0 || ih >= a.H || iw < 0 || iw >= a.W
                    ? zeros
                    : x + ((int64_t{n} * a.H + ih) * a.W + iw) * a.C;
      }
      const float* wk = w + (int64_t{kh} * a.KW + kw) * a.C * a.O + o0;
      for (int c = 0; c < a.C; ++c) {
        __m512 wv[B];
        for (int b = 0; b < B; ++b) {
          __mmask16 m = b == B - 1 ? last_mask : 0xffff;
          wv[b] = _mm512_maskz_loadu_ps(m, wk + int64_t{c} * a.O + 16 * b);
        }
        for (int p = 0; p < P; ++p) {
          const __m512 v = _mm512_set1_ps(in[p][c]);
          for (int b = 0; b < B; ++b) acc[p][b] = _mm512_fmadd_ps(v, wv[b], acc[p][b]);
        }
      }
    }
  }
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  for (int p = 0; p < P; ++p) {
    float* out = y + ((int64_t{n} * a.OH + oh) * a.OW + ow + p) * a.O + o0;
    for (int b = 0; b < B; ++b) {
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

// One patch per pixel: the window's values with the zero point removed (padded taps 0),
// int16, padded to an even length.
void gather_patches(const Int8TileArgs& q, const int8_t* __restrict x, int n, int oh, int ow,
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

// P pixels' patches (pairs of 16-bit values) against B blocks of 16 channels starting at o0.
template <int P, int B>
__attribute__((target("avx512f,avx512bw,avx512vl,bmi2"))) void tile_int8(
    const Int8TileArgs& q, const int16_t* patches, int64_t stride, const int16_t* w,
    const int32_t* bias, const float* scale, int8_t* y, int n, int oh, int ow, int o0,
    __mmask16 last_mask) {
  const ConvTileArgs& a = q.g;
  const int64_t pairs = stride / 2;
  __m512i acc[P][B];
  for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    __m512i init = bias ? _mm512_maskz_loadu_epi32(m, bias + o0 + 16 * b) : _mm512_setzero_si512();
    for (int p = 0; p < P; ++p) acc[p][b] = init;
  }
  const __mmask32 last_pairs = _pdep_u32(last_mask, 0x55555555u) * 3u;
  for (int64_t k2 = 0; k2 < pairs; ++k2) {
    const int16_t* wk = w + (k2 * a.O + o0) * 2;
    __m512i wv[B];
    for (int b = 0; b < B; ++b) {
      wv[b] = _mm512_maskz_loadu_epi16(b == B - 1 ? last_pairs : 0xffffffffu, wk + 32 * b);
    }
    for (int p = 0; p < P; ++p) {
      int32_t pair;
      std::memcpy(&pair, patches + p * stride + 2 * k2, sizeof pair);
      const __m512i v = _mm512_set1_epi32(pair);
      for (int b = 0; b < B; ++b)
        acc[p][b] = _mm512_add_epi32(acc[p][b], _mm512_madd_epi16(v, wv[b]));
    }
  }
  const __m512i lo = _mm512_set1_epi32(q.lo), hi = _mm512_set1_epi32(q.hi),
                yz = _mm512_set1_epi32(q.y_zero);
  for (int b = 0; b < B; ++b) {
    __mmask16 m = b == B - 1 ? last_mask : 0xffff;
    const __m512 s = _mm512_maskz_loadu_ps(m, scale + o0 + 16 * b);
    for (int p = 0; p < P; ++p) {
      __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[p][b]), s);
      // Round half away from zero, as the portable kernels do.
      const __m512i sign = _mm512_and_si512(_mm512_castps_si512(r), _mm512_set1_epi32(INT32_MIN));
      const __m512 half =
          _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(0.5f))));
      __m512i v = _mm512_add_epi32(_mm512_cvttps_epi32(_mm512_add_ps(r, half)), yz);
      v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
      int8_t* out = y + ((int64_t{n} * a.OH + oh) * a.OW + ow + p) * a.O + o0 + 16 * b;
      _mm_mask_storeu_epi8(out, m, _mm512_cvtepi32_epi8(v));
    }
  }
}

template <int P>
void int8_tiles_of_row(const Int8TileArgs& q, const int8_t* x, const int16_t* w,
                       const int32_t* bias, const float* scale, int16_t* patches, int8_t* y, int n,
                       int oh, int ow) {
  const int O = q.g.O;
  const int64_t stride = int8_patch_stride(q.g);
  gather_patches(q, x, n, oh, ow, P, stride, patches);
  for (int o0 = 0; o0 < O; o0 += 64) {
    const int left = std::min(64, O - o0), blocks = (left + 15) / 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << (left - 16 * (blocks - 1))) - 1);
    switch (blocks) {
      case 1:
        tile_int8<P, 1>(q, patches, stride, w, bias, scale, y, n, oh, ow, o0, mask);
        break;
      case 2:
        tile_int8<P, 2>(q, patches, stride, w, bias, scale, y, n, oh, ow, o0, mask);
        break;
      case 3:
        tile_int8<P, 3>(q, patches, stride, w, bias, scale, y, n, oh, ow, o0, mask);
        break;
      default:
        tile_int8<P, 4>(q, patches, stride, w, bias, scale, y, n, oh, ow, o0, mask);
        break;
    }
  }
}

}  // namespace

bool conv_tiles_supported() { return kernel_isa() == Isa::avx512; }

void conv2d_int8_tiles(const Int8TileArgs& q, const int8_t* x, const int16_t* packed,
                       const int32_t* bias, const float* scale, int16_t* patches, int8_t* y) {
  const ConvTileArgs& a = q.g;
  for (int n = 0; n < a.N; ++n) {
    for (int oh = 0; oh < a.OH; ++oh) {
      int ow = 0;
      for (; ow + 4 <= a.OW; ow += 4)
        int8_tiles_of_row<4>(q, x, packed, bias, scale, patches, y, n, oh, ow);
      for (; ow < a.OW; ++ow) {
        int8_tiles_of_row<1>(q, x, packed, bias, scale, patches, y, n, oh, ow);
      }
    }
  }
}

void conv2d_tiles(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                  const float* zeros, float* y) {
  for (int n = 0; n < a.N; ++n) {
    for (int oh = 0; oh < a.OH; ++oh) {
      int ow = 0;
      for (; ow + 4 <= a.OW; ow += 4) tiles_of_row<4>(a, x, w, bias, zeros, y, n, oh, ow);
      for (; ow < a.OW; ++ow) tiles_of_row<1>(a, x, w, bias, zeros, y, n, oh, ow);
    }
  }
}

#else

bool conv_tiles_supported() { return false; }
void conv2d_tiles(const ConvTileArgs&, const float*, const float*, const float*, const float*,
                  float*) {}
void conv2d_int8_tiles(const Int8TileArgs&, const int8_t*, const int16_t*, const int32_t*,
                       const float*, int16_t*, int8_t*) {}

#endif

int64_t int8_patch_stride(const ConvTileArgs& a) {
  const int64_t k = int64_t{a.KH} * a.KW * a.C;
  return k + (k & 1);
}

size_t int8_pairs_elements(const ConvTileArgs& a) {
  return static_cast<size_t>(int8_patch_stride(a) * a.O);
}

void pack_int8_pairs(const ConvTileArgs& a, const int8_t* hwio, int16_t* packed) {
  const int64_t K = int64_t{a.KH} * a.KW * a.C, pairs = int8_patch_stride(a) / 2;
  for (int64_t k2 = 0; k2 < pairs; ++k2) {
    for (int o = 0; o < a.O; ++o) {
      for (int j = 0; j < 2; ++j) {
        const int64_t k = 2 * k2 + j;
        packed[(k2 * a.O + o) * 2 + j] = k < K ? hwio[k * a.O + o] : int16_t{0};
      }
    }
  }
}

}  // namespace tessera::lite
