// Float32 convolution in register tiles, for machines with AVX-512: four output pixels of a
// row by up to 64 output channels stay in 16 vector registers for a whole window, so each
// weight load feeds four multiply-adds (the plain loop re-reads and re-writes the outputs
// for every input channel). NHWC input, [KH, KW, C, O] weights.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::lite {

struct ConvTileArgs {
  int N, H, W, C, KH, KW, O, OH, OW, sh, sw, dh, dw, pt, pl;
  bool relu, relu6;
};

// Whether this machine runs conv2d_tiles (AVX-512F).
bool conv_tiles_supported();
// `zeros` holds C zero floats (the input of padded taps).
void conv2d_tiles(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                  const float* zeros, float* y);

// The int8 version: each pixel's window is gathered as int16 (zero point removed, padded
// taps 0, even length: the patch stride), then four pixels by up to 64 channels of int32
// sums stay in registers, two window values per vpmaddwd. Weights are packed by
// pack_int8_pairs into [stride / 2, O, 2] int16; `patches` holds 4 patches; the output is
// requantized per channel (multipliers `scale`, zero point, clamp [lo, hi]).
struct Int8TileArgs {
  ConvTileArgs g;
  int32_t x_zero, y_zero, lo, hi;
};
int64_t int8_patch_stride(const ConvTileArgs& a);   // KH * KW * C, rounded up to even
size_t int8_pairs_elements(const ConvTileArgs& a);  // int16 values of the packed weights
void pack_int8_pairs(const ConvTileArgs& a, const int8_t* hwio, int16_t* packed);
void conv2d_int8_tiles(const Int8TileArgs& a, const int8_t* x, const int16_t* packed,
                       const int32_t* bias, const float* scale, int16_t* patches, int8_t* y);

}  // namespace tessera::lite
