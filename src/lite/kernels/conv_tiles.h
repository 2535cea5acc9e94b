// Float32 convolution in register tiles, for machines with AVX-512: four output pixels of a
// row by up to 64 output channels stay in 16 vector registers for a whole window, so each
// weight load feeds four multiply-adds (the plain loop re-reads and re-writes the outputs
// for every input channel). NHWC input, [KH, KW, C, O] weights.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::lite {

// Output pixels per tile along a row (the rest of a row goes one pixel at a time).
constexpr int kTilePixels = 7;

struct ConvTileArgs {
  int N, H, W, C, KH, KW, O, OH, OW, sh, sw, dh, dw, pt, pl;
  bool relu, relu6;
};

// Whether this machine runs conv2d_tiles_row (AVX-512F).
bool conv_tiles_supported();
// Narrow windows (a first layer's one channel) read from a zero-padded copy of each image:
// every window inside, so that each window row is one run of KW * C values (the tiles'
// edge checks cost as much as the work there). The copy is float_image_args' input, image
// 0; float_image_floats is its size (SIZE_MAX past 2^38 floats).
size_t float_image_floats(const ConvTileArgs& a);
ConvTileArgs float_image_args(const ConvTileArgs& a);
void prepare_float_image(const ConvTileArgs& a, const float* x, int n, float* image);
// Output row (n, oh), [OW, O], into `y_row`. `zeros` holds C zero floats (the input of padded
// taps). By rows, so that a pooling that follows can take them while they are in cache.
void conv2d_tiles_row(const ConvTileArgs& a, const float* x, const float* w, const float* bias,
                      const float* zeros, int n, int oh, float* y_row);

// The int8 version, on AVX-512 VNNI (conv_vnni_supported(); elsewhere the int8 layers take
// the 16-bit dot products of dot.h): each pixel's window is gathered once as uint8, x + 128
// (padded taps: the zero point + 128), then 7 pixels by up to 64 channels (14 by up to 32)
// of int32 sums stay in registers, four products per lane in one vpdpbusd against int8
// weights packed [quads, O, 4] (int8_quad_stride). Sums start at bias - correction,
// correction[o] = (x_zero + 128) * the sum of channel o's weights, and are requantized per
// channel (multipliers `scale`, zero point, clamp [lo, hi]).
struct Int8TileArgs {
  ConvTileArgs g;
  int32_t x_zero, y_zero, lo, hi;
};
struct Int8Weights {
  const void* packed;
  const int32_t* correction;
  const float* scale;
};
// Whether this machine runs the int8 tiles (AVX-512 VNNI, unless TESSERA_LITE_ISA=avx512).
bool conv_vnni_supported();
int64_t int8_quad_stride(const ConvTileArgs& a);  // KH * KW * C, rounded up to a multiple of 4
// The patches of one tile and a padded copy of one image; SIZE_MAX past 2^40 bytes.
size_t int8_scratch_bytes(const ConvTileArgs& a);
// Before the rows of image n: its padded copy, made once, that the patches are copied from.
void prepare_int8_image(const Int8TileArgs& a, const int8_t* x, int n, void* scratch);
size_t int8_packed_bytes(const ConvTileArgs& a);
void pack_int8_weights(const ConvTileArgs& a, const int8_t* hwio, int32_t x_zero, int8_t* packed,
                       int32_t* correction);
// Output row `oh` of the image prepare_int8_image last put in `scratch`.
void conv2d_int8_tiles_row(const Int8TileArgs& a, const Int8Weights& w, const int32_t* bias,
                           void* scratch, int oh, int8_t* y_row);
// The same followed by a 2x2 max pool of stride 2: pooled row `ph` ([OW / 2, O]) from output
// rows 2ph and 2ph + 1, pooling the int32 sums before requantizing them (a quarter of the
// requantization, and no rows to store and read back). The requantization is monotonic
// where every multiplier is finite and positive, so this gives the bytes of pooling the
// requantized rows; the caller checks the multipliers.
void conv2d_int8_tiles_pooled_row(const Int8TileArgs& a, const Int8Weights& w, const int32_t* bias,
                                  void* scratch, int ph, int8_t* y_row);

// Float32 fully connected layers on AVX-512 (conv_tiles_supported()): the [O, I] weights
// are packed at allocation into blocks of up to 128 outputs, [I][width] each (width: the
// block's outputs rounded up to 16, zero-padded), so that a block is one sequential stream
// and its sums stay in 8 vector registers. Dot products along [O, I] rows read four streams
// at once and run slower where the weights come from beyond the L2 cache (the main job's
// 3136 x 128 layer: 18 against 14 us).
size_t fc_packed_floats(int64_t I, int64_t O);
void pack_fc_weights(const float* w, int64_t I, int64_t O, float* packed);
void fully_connected_packed(const float* x, int64_t rows, int64_t I, int64_t O, const float* packed,
                            const float* bias, bool relu, bool relu6, float* y);

// The int8 form with VNNI (conv_vnni_supported()): blocks of up to 128 outputs, [ceil(I / 4)]
// [width][4] int8 each (quads of inputs per output, zero-padded), against uint8 rows (x +
// 128, zero-padded to a multiple of 4) in one stream per block (the main job's 3136 x 128
// layer: 3.4 us through 16-bit dot products of [O, I] rows, 1.75 us in a standalone test).
// Sums start at bias - correction (as the VNNI tiles) and are requantized per output with
// `scale`.
size_t fc_int8_packed_bytes(int64_t I, int64_t O);
void pack_fc_int8(const int8_t* w, int64_t I, int64_t O, int32_t x_zero, int8_t* packed,
                  int32_t* correction);
void fully_connected_int8_packed(const Int8TileArgs& q, const int8_t* x, int64_t rows, int64_t I,
                                 int64_t O, const int8_t* packed, const int32_t* correction,
                                 const float* scale, const int32_t* bias, uint8_t* row, int8_t* y);

}  // namespace tessera::lite
