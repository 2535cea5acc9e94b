// Image augmentations on [C, H, W] float images, with per-element Philox streams.
#include "tessera/data/augment.h"

#include <algorithm>
#include <cmath>

#include "internal.h"
#include "tessera/core/error.h"
#include "tessera/ops/elementwise.h"

namespace tessera::data {
namespace {

struct Chw {
  Tensor data;  // contiguous float32
  int64_t c, h, w;
};

Chw as_chw(const Tensor& image, const char* op) {
  check(image.defined(), op, "undefined image");
  check(image.dim() == 2 || image.dim() == 3, op, "expected a [C, H, W] or [H, W] image, got ",
        image.shape());
  check(is_floating(image.dtype()), op, "expected a floating image, got ",
        dtype_name(image.dtype()), " (convert with .to(DType::Float32) and scale first)");
  Chw r;
  r.data = image.to(DType::Float32).contiguous();
  r.c = image.dim() == 3 ? image.shape()[0] : 1;
  r.h = image.shape()[image.dim() - 2];
  r.w = image.shape()[image.dim() - 1];
  return r;
}

// A new tensor of the image's rank with spatial size h x w.
Tensor like(const Tensor& image, int64_t c, int64_t h, int64_t w) {
  return Tensor::empty(image.dim() == 3 ? Shape{c, h, w} : Shape{h, w}, DType::Float32);
}

}  // namespace

Generator element_generator(uint64_t seed, const ElementInfo& info) {
  return Generator(detail::mix64(detail::mix64(seed, static_cast<uint64_t>(info.epoch)),
                                 static_cast<uint64_t>(info.index)));
}

double uniform_double(Generator& gen, double low, double high) {
  check(low <= high, "uniform_double", "low (", low, ") must not exceed high (", high, ")");
  auto w = philox4x32(gen.seed(), 0, gen.advance(1));
  return low + (high - low) * uint_to_unit_double(w[0], w[1]);
}

Tensor random_flip(const Tensor& image, Generator& gen, double p) {
  check(p >= 0.0 && p <= 1.0, "random_flip", "p must lie in [0, 1], got ", p);
  Chw x = as_chw(image, "random_flip");
  if (uniform_double(gen) >= p) return x.data;
  Tensor out = like(image, x.c, x.h, x.w);
  const float* src = x.data.data<float>();
  float* dst = out.data<float>();
  for (int64_t row = 0; row < x.c * x.h; ++row) {
    const float* s = src + row * x.w;
    float* d = dst + row * x.w;
    for (int64_t j = 0; j < x.w; ++j) d[j] = s[x.w - 1 - j];
  }
  return out;
}

Tensor random_crop(const Tensor& image, int64_t height, int64_t width, int64_t padding,
                   Generator& gen, double fill) {
  Chw x = as_chw(image, "random_crop");
  check(height > 0 && width > 0 && padding >= 0, "random_crop", "invalid crop ", height, "x", width,
        " with padding ", padding);
  int64_t ph = x.h + 2 * padding, pw = x.w + 2 * padding;
  check(height <= ph && width <= pw, "random_crop", "crop ", height, "x", width,
        " is larger than the padded image ", ph, "x", pw, " (image ", image.shape(), ")");
  // Offsets into the padded image, each uniform over the valid positions.
  int64_t top = std::min<int64_t>(
      ph - height,
      static_cast<int64_t>(uniform_double(gen) * static_cast<double>(ph - height + 1)));
  int64_t left = std::min<int64_t>(
      pw - width, static_cast<int64_t>(uniform_double(gen) * static_cast<double>(pw - width + 1)));
  Tensor out = like(image, x.c, height, width);
  const float* src = x.data.data<float>();
  float* dst = out.data<float>();
  float f = static_cast<float>(fill);
  for (int64_t ch = 0; ch < x.c; ++ch) {
    for (int64_t i = 0; i < height; ++i) {
      int64_t sy = top + i - padding;
      float* d = dst + (ch * height + i) * width;
      if (sy < 0 || sy >= x.h) {
        std::fill(d, d + width, f);
        continue;
      }
      const float* s = src + (ch * x.h + sy) * x.w;
      for (int64_t j = 0; j < width; ++j) {
        int64_t sx = left + j - padding;
        d[j] = sx >= 0 && sx < x.w ? s[sx] : f;
      }
    }
  }
  return out;
}

Tensor random_brightness(const Tensor& image, double max_delta, Generator& gen) {
  Chw x = as_chw(image, "random_brightness");
  check(max_delta >= 0, "random_brightness", "max_delta must be >= 0, got ", max_delta);
  float delta = static_cast<float>(uniform_double(gen, -max_delta, max_delta));
  Tensor out = like(image, x.c, x.h, x.w);
  const float* src = x.data.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < x.data.numel(); ++i) dst[i] = src[i] + delta;
  return out;
}

Tensor random_contrast(const Tensor& image, double lower, double upper, Generator& gen) {
  Chw x = as_chw(image, "random_contrast");
  check(0 <= lower && lower <= upper, "random_contrast", "need 0 <= lower <= upper, got ", lower,
        ", ", upper);
  float factor = static_cast<float>(uniform_double(gen, lower, upper));
  Tensor out = like(image, x.c, x.h, x.w);
  const float* src = x.data.data<float>();
  float* dst = out.data<float>();
  int64_t hw = x.h * x.w;
  for (int64_t ch = 0; ch < x.c; ++ch) {
    double sum = 0;
    for (int64_t i = 0; i < hw; ++i) sum += src[ch * hw + i];
    float mean = hw ? static_cast<float>(sum / hw) : 0.0f;
    for (int64_t i = 0; i < hw; ++i) dst[ch * hw + i] = (src[ch * hw + i] - mean) * factor + mean;
  }
  return out;
}

Tensor normalize(const Tensor& image, const std::vector<double>& mean,
                 const std::vector<double>& std) {
  Chw x = as_chw(image, "normalize");
  auto fits = [&](const std::vector<double>& v) {
    return v.size() == 1 || static_cast<int64_t>(v.size()) == x.c;
  };
  check(fits(mean) && fits(std), "normalize", "mean and std need 1 or ", x.c,
        " entries (one per channel), got ", mean.size(), " and ", std.size());
  Tensor out = like(image, x.c, x.h, x.w);
  const float* src = x.data.data<float>();
  float* dst = out.data<float>();
  int64_t hw = x.h * x.w;
  for (int64_t ch = 0; ch < x.c; ++ch) {
    double m = mean[mean.size() == 1 ? 0 : ch], s = std[std.size() == 1 ? 0 : ch];
    check(s != 0, "normalize", "std of channel ", ch, " is 0");
    float mf = static_cast<float>(m), inv = static_cast<float>(1.0 / s);
    for (int64_t i = 0; i < hw; ++i) dst[ch * hw + i] = (src[ch * hw + i] - mf) * inv;
  }
  return out;
}

Tensor bytes_to_float(const Tensor& bytes, const ByteTable& table) {
  check(bytes.defined() && bytes.dtype() == DType::UInt8, "bytes_to_float", "expected uint8, got ",
        bytes.defined() ? dtype_name(bytes.dtype()) : "an undefined tensor");
  Tensor in = bytes.contiguous();
  Tensor out = Tensor::empty(in.shape(), DType::Float32);
  const uint8_t* src = in.data<uint8_t>();
  float* dst = out.data<float>();
  const float* values = table.values.data();
  for (int64_t i = 0, n = in.numel(); i < n; ++i) dst[i] = values[src[i]];
  return out;
}

ByteTable byte_table(std::optional<double> mean, std::optional<double> std) {
  check(mean.has_value() == std.has_value(), "byte_table", "give both mean and std, or neither");
  check(!std || *std != 0, "byte_table", "std is 0");
  Tensor x = Tensor::empty({256}, DType::Float32);
  for (int v = 0; v < 256; ++v) x.data<float>()[v] = static_cast<float>(v) / 255.0f;
  if (std) x = ((x - *mean) / *std).contiguous();
  ByteTable table;
  std::copy_n(x.data<float>(), 256, table.values.begin());
  return table;
}

MapIndexedFn augment(uint64_t seed, std::function<Tensor(const Tensor&, Generator&)> fn,
                     size_t component) {
  check(static_cast<bool>(fn), "augment", "the function is empty");
  return [seed, fn = std::move(fn), component](Example e, const ElementInfo& info) {
    check(component < e.size(), "augment", "component ", component, " of an element with ",
          e.size(), " components");
    Generator gen = element_generator(seed, info);
    e[component] = fn(e[component], gen);
    return e;
  };
}

}  // namespace tessera::data
