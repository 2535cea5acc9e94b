// ONNX's window functions (HannWindow, HammingWindow, BlackmanWindow): constants of a size
// known at import time.
#include <cmath>
#include <numbers>

#include "converter.h"
#include "tensor_proto.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

// sum_k a_k cos(2 pi k n / N), N = size (periodic) or size - 1 (symmetric).
TensorList cosine_window(const NodeContext& c, std::vector<double> coefficients) {
  auto size = static_cast<int64_t>(c.scalar(0));
  c.require(size >= 0 && size <= (int64_t{1} << 30), "window size ", size, " is out of range");
  bool periodic = c.attr_i("periodic", 1) != 0;
  double n_total = periodic ? double(size) : double(size - 1);
  std::vector<double> values(static_cast<size_t>(size));
  for (int64_t n = 0; n < size; ++n) {
    double v = 0;
    for (size_t k = 0; k < coefficients.size(); ++k) {
      v += coefficients[k] * std::cos(2 * std::numbers::pi * double(k) * double(n) / n_total);
    }
    values[static_cast<size_t>(n)] = v;
  }
  DType dtype = dtype_from_onnx(static_cast<int>(c.attr_i("output_datatype", 1)), c.where());
  return {cast(from_vector<double>(values, {size}), dtype)};
}

TensorList hann_op(const NodeContext& c) { return cosine_window(c, {0.5, -0.5}); }
TensorList hamming_op(const NodeContext& c) {
  return cosine_window(c, {25.0 / 46.0, -21.0 / 46.0});
}
TensorList blackman_op(const NodeContext& c) { return cosine_window(c, {0.42, -0.5, 0.08}); }

// Moves `axis` to the end, and a tensor's last-but-one axis back to `axis`.
Tensor movedim_last(const Tensor& t, int64_t axis) {
  Dims order;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d != axis) order.push_back(d);
  }
  order.push_back(axis);
  return permute(t, order);
}
Tensor movedim_back(const Tensor& t, int64_t axis) {
  Dims order;
  const int64_t moved = t.dim() - 2;
  for (int64_t d = 0, src = 0; d < t.dim(); ++d) {
    if (d == axis) {
      order.push_back(moved);
    } else {
      if (src == moved) ++src;
      order.push_back(src++);
    }
  }
  return permute(t, order);
}

// Real and imaginary parts of a [..., 1 or 2] signal.
std::pair<Tensor, Tensor> complex_parts(const NodeContext& c, const Tensor& x) {
  c.require(x.dim() >= 2 && (x.size(-1) == 1 || x.size(-1) == 2),
            "the last dim must be 1 (real) or 2 (complex), got shape ", x.shape());
  Tensor re = select(x, -1, 0);
  return {re, x.size(-1) == 2 ? select(x, -1, 1) : zeros_like(re)};
}

// The DFT of re + i im along `axis` (length n after zero-padding or truncation), as
// products with cos/sin matrices; keeps bins [0, bins). Returns [..., bins, 2] at axis.
Tensor dft(const Tensor& re_in, const Tensor& im_in, int64_t axis, int64_t n, int64_t bins,
           bool inverse) {
  auto fit = [&](Tensor t) {
    int64_t have = t.size(axis);
    if (have > n) return narrow(t, axis, 0, n);
    if (have < n) {
      Shape pad_shape = t.shape();
      pad_shape[axis] = n - have;
      return concat({t, zeros(pad_shape, t.dtype())}, axis);
    }
    return t;
  };
  Tensor re = movedim_last(fit(re_in), axis), im = movedim_last(fit(im_in), axis);
  std::vector<double> cosv(static_cast<size_t>(n * bins)), sinv(static_cast<size_t>(n * bins));
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < bins; ++k) {
      double angle = 2 * std::numbers::pi * double((j * k) % std::max<int64_t>(n, 1)) / double(n);
      cosv[j * bins + k] = std::cos(angle);
      sinv[j * bins + k] = std::sin(angle);
    }
  }
  Tensor cm = cast(from_vector<double>(cosv, {n, bins}), re.dtype());
  Tensor sm = cast(from_vector<double>(sinv, {n, bins}), re.dtype());
  // exp(-i angle) forward, exp(+i angle) inverse (then divided by n).
  Tensor sign = scalar_tensor(inverse ? 1.0 : -1.0, re.dtype());
  Tensor out_re = sub(matmul(re, cm), mul(sign, matmul(im, sm)));
  Tensor out_im = add(matmul(im, cm), mul(sign, matmul(re, sm)));
  if (inverse) {
    out_re = div(out_re, scalar_tensor(double(n), re.dtype()));
    out_im = div(out_im, scalar_tensor(double(n), re.dtype()));
  }
  Tensor both = stack({out_re, out_im}, -1);  // [..., bins, 2] with bins last-but-one
  return movedim_back(both, axis);
}

TensorList dft_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.axis(c.attr_i("axis", 1), x.dim() - 1);
  auto [re, im] = complex_parts(c, x);
  int64_t n = c.has(1) ? static_cast<int64_t>(c.scalar(1)) : x.size(axis);
  c.require(n > 0, "dft_length must be positive");
  bool inverse = c.attr_i("inverse", 0) != 0, onesided = c.attr_i("onesided", 0) != 0;
  return {dft(re, im, axis, n, onesided ? n / 2 + 1 : n, inverse)};
}

TensorList stft_op(const NodeContext& c) {
  const Tensor& x = c.in(0);
  auto [re, im] = complex_parts(c, x);  // [batch, length]
  auto step = static_cast<int64_t>(c.scalar(1));
  Tensor window = c.has(2) ? c.in(2) : Tensor();
  int64_t frame =
      c.has(3) ? static_cast<int64_t>(c.scalar(3)) : (window.defined() ? window.size(0) : 0);
  c.require(step > 0 && frame > 0 && frame <= re.size(1), "frame_step ", step, " and frame_length ",
            frame, " do not fit a signal of length ", re.size(1));
  int64_t frames = (re.size(1) - frame) / step + 1;
  TensorList re_frames, im_frames;
  for (int64_t f = 0; f < frames; ++f) {
    re_frames.push_back(narrow(re, 1, f * step, frame));
    im_frames.push_back(narrow(im, 1, f * step, frame));
  }
  Tensor fr = stack(re_frames, 1), fi = stack(im_frames, 1);  // [batch, frames, frame]
  if (window.defined()) {
    fr = mul(fr, window);
    fi = mul(fi, window);
  }
  bool onesided = c.attr_i("onesided", 1) != 0;
  return {dft(fr, fi, 2, frame, onesided ? frame / 2 + 1 : frame, false)};
}

}  // namespace

void add_signal_ops(OpTable& t) {
  t["HannWindow"] = {hann_op};
  t["HammingWindow"] = {hamming_op};
  t["BlackmanWindow"] = {blackman_op};
  t["DFT"] = {dft_op};
  t["STFT"] = {stft_op};
}

}  // namespace tessera::onnx
