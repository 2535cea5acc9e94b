// ONNX's GridSample (opset 16, PyTorch's grid_sample): samples X [N, C, H, W] at the
// normalized (x, y) positions of grid [N, Ho, Wo, 2], nearest, bilinear or bicubic, with
// zeros, border or reflection padding. Written with gathers, so the grid may be computed
// at run time.
#include <array>
#include <cmath>

#include "converter.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/shape.h"

namespace tessera::onnx {
namespace {

struct Sampler {
  Tensor flat;  // X as [N, C, H * W]
  int64_t h, w;
  std::string padding;
  bool align_corners;

  Tensor num(double v) const { return scalar_tensor(v, flat.dtype()); }

  // Pixel coordinate of a normalized one along a dimension of `size`.
  Tensor unnormalize(const Tensor& g, int64_t size) const {
    if (align_corners) return mul(add(g, num(1)), num((size - 1) / 2.0));
    return div(sub(mul(add(g, num(1)), num(double(size))), num(1)), num(2));
  }
  // Reflects coordinates into [low, high] (PyTorch's reflect_coordinates).
  Tensor reflect(const Tensor& x, double low, double high) const {
    double span = high - low;
    if (span <= 0) return zeros_like(x);
    Tensor d = abs(sub(x, num(low)));
    Tensor flips = floor(div(d, num(span)));
    Tensor extra = sub(d, mul(flips, num(span)));
    Tensor even = eq(sub(flips, mul(floor(div(flips, num(2))), num(2))), num(0));
    return where(even, add(extra, num(low)), sub(num(span + low), extra));
  }
  // Applies border or reflection padding to a coordinate.
  Tensor pad_coord(const Tensor& x, int64_t size) const {
    if (padding == "border") return clamp(x, 0.0, double(size - 1));
    if (padding == "reflection") {
      Tensor r =
          align_corners ? reflect(x, 0, double(size - 1)) : reflect(x, -0.5, double(size) - 0.5);
      return clamp(r, 0.0, double(size - 1));
    }
    return x;
  }
  // X at integer pixel positions (float tensors [N, Ho, Wo]) times weight; zero outside.
  Tensor tap(const Tensor& xi, const Tensor& yi, const Tensor& weight, bool pad_taps) const {
    Tensor px = pad_taps ? pad_coord(xi, w) : xi, py = pad_taps ? pad_coord(yi, h) : yi;
    Tensor inside = logical_and(logical_and(ge(px, num(0)), le(px, num(double(w - 1)))),
                                logical_and(ge(py, num(0)), le(py, num(double(h - 1)))));
    Tensor lin =
        cast(add(mul(clamp(py, 0.0, double(h - 1)), num(double(w))), clamp(px, 0.0, double(w - 1))),
             DType::Int64);
    const int64_t n = flat.size(0), ch = flat.size(1);
    Tensor index = reshape(lin, {n, 1, -1});
    Tensor picked = take_along_axis(flat, expand(index, {n, ch, index.size(2)}), 2);
    Tensor wt = reshape(mul(weight, cast(inside, flat.dtype())), {n, 1, -1});
    return mul(picked, wt);
  }
};

// The four cubic-convolution weights for fractional offsets t (tensors).
std::array<Tensor, 4> cubic_weights(const Sampler& s, const Tensor& t) {
  const double a = -0.75;
  auto near = [&](const Tensor& d) {  // |d| <= 1
    return add(mul(mul(sub(mul(d, s.num(a + 2)), s.num(a + 3)), d), d), s.num(1));
  };
  auto far = [&](const Tensor& d) {  // 1 < |d| < 2
    return sub(mul(add(mul(sub(mul(d, s.num(a)), s.num(5 * a)), d), s.num(8 * a)), d),
               s.num(4 * a));
  };
  Tensor one = s.num(1);
  return {far(add(t, one)), near(t), near(sub(one, t)), far(sub(s.num(2), t))};
}

TensorList grid_sample_op(const NodeContext& c) {
  const Tensor &x = c.in(0), &grid = c.in(1);
  c.require(x.dim() == 4 && grid.dim() == 4 && grid.size(3) == 2 && grid.size(0) == x.size(0),
            "needs X [N, C, H, W] and grid [N, Ho, Wo, 2], got ", x.shape(), " and ", grid.shape());
  std::string mode = c.attr_s("mode", "bilinear");
  Sampler s{reshape(x, {x.size(0), x.size(1), x.size(2) * x.size(3)}), x.size(2), x.size(3),
            c.attr_s("padding_mode", "zeros"), c.attr_i("align_corners", 0) != 0};
  c.require(s.padding == "zeros" || s.padding == "border" || s.padding == "reflection",
            "unknown padding_mode '", s.padding, "'");
  Tensor g = cast(grid, x.dtype());
  Tensor ix = s.unnormalize(select(g, 3, 0), s.w), iy = s.unnormalize(select(g, 3, 1), s.h);
  Tensor out;
  if (mode == "nearest" || mode == "bilinear") {
    ix = s.pad_coord(ix, s.w);
    iy = s.pad_coord(iy, s.h);
  }
  if (mode == "nearest") {
    out = s.tap(round(ix), round(iy), ones_like(ix), false);
  } else if (mode == "bilinear") {
    Tensor x0 = floor(ix), y0 = floor(iy);
    Tensor tx = sub(ix, x0), ty = sub(iy, y0);
    Tensor one = s.num(1);
    Tensor x1 = add(x0, one), y1 = add(y0, one);
    out = add(add(s.tap(x0, y0, mul(sub(one, tx), sub(one, ty)), false),
                  s.tap(x1, y0, mul(tx, sub(one, ty)), false)),
              add(s.tap(x0, y1, mul(sub(one, tx), ty), false), s.tap(x1, y1, mul(tx, ty), false)));
  } else if (mode == "bicubic") {
    Tensor x0 = floor(ix), y0 = floor(iy);
    std::array<Tensor, 4> wx = cubic_weights(s, sub(ix, x0)), wy = cubic_weights(s, sub(iy, y0));
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 4; ++i) {
        Tensor t = s.tap(add(x0, s.num(i - 1)), add(y0, s.num(j - 1)), mul(wx[i], wy[j]), true);
        out = out.defined() ? add(out, t) : t;
      }
    }
  } else {
    c.require(false, "unknown mode '", mode, "'");
  }
  return {reshape(out, {x.size(0), x.size(1), grid.size(1), grid.size(2)})};
}

}  // namespace

void add_grid_sample_ops(OpTable& t) { t["GridSample"] = {grid_sample_op}; }

}  // namespace tessera::onnx
