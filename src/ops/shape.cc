// Shape ops. View ops build new strides over the same storage; their gradients
// are written with ops (reshape, permute, sum_to, a padded copy) so that they are
// differentiable again. Composites (stack, split, tile, roll, tril...) reuse them.
#include "tessera/ops/shape.h"

#include "../kernels/cpu/copy.h"
#include "samples.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/op.h"
#include "tessera/ops/reduce.h"

namespace tessera {
namespace {

// ----------------------------------------------------------- samples (tests/registry)

using Dims64 = std::vector<int64_t>;

OpSample one_input(const Shape& shape, Attrs attrs, uint64_t seed) {
  return {{samples::values(shape, -2, 2, seed)}, std::move(attrs)};
}

std::vector<OpSample> reshape_samples() {
  return {one_input({2, 37}, {{"shape", Dims64{37, 2}}}, 1),
          one_input({3, 1, 5}, {{"shape", Dims64{15}}}, 2),
          one_input({}, {{"shape", Dims64{1, 1}}}, 3),
          one_input({4, 0, 3}, {{"shape", Dims64{0, 12}}}, 4)};
}
std::vector<OpSample> permute_samples() {
  return {one_input({2, 3, 4}, {{"order", Dims64{2, 0, 1}}}, 1),
          one_input({3, 1, 5}, {{"order", Dims64{1, 0, 2}}}, 2),
          one_input({2, 37}, {{"order", Dims64{1, 0}}}, 3), one_input({}, {{"order", Dims64{}}}, 4),
          one_input({4, 0, 3}, {{"order", Dims64{2, 1, 0}}}, 5)};
}
Attrs slice_attrs(int64_t axis, int64_t start, int64_t stop, int64_t step) {
  return {{"axis", axis}, {"start", start}, {"stop", stop}, {"step", step}};
}
std::vector<OpSample> slice_samples() {
  return {one_input({5, 37}, slice_attrs(1, 3, 30, 4), 1),
          one_input({5, 37}, slice_attrs(0, 1, 5, 1), 2),
          one_input({3, 4, 5}, slice_attrs(-1, 0, 2, 1), 3),
          one_input({4, 0, 3}, slice_attrs(2, 1, 3, 1), 4),
          one_input({6}, slice_attrs(0, 2, 2, 1), 5)};
}
std::vector<OpSample> expand_samples() {
  return {one_input({3, 1}, {{"shape", Dims64{3, 4}}}, 1),
          one_input({1}, {{"shape", Dims64{2, 3}}}, 2), one_input({}, {{"shape", Dims64{0, 2}}}, 3),
          one_input({2, 1, 37}, {{"shape", Dims64{2, 5, 37}}}, 4)};
}
std::vector<OpSample> diagonal_samples() {
  auto attrs = [](int64_t offset, int64_t a1, int64_t a2) {
    return Attrs{{"offset", offset}, {"axis1", a1}, {"axis2", a2}};
  };
  return {one_input({4, 5}, attrs(1, 0, 1), 1), one_input({3, 4, 5}, attrs(-1, 2, 0), 2),
          one_input({4, 4}, attrs(0, 0, 1), 3), one_input({2, 0}, attrs(0, 0, 1), 4)};
}
std::vector<OpSample> copy_samples() {
  return {one_input({2, 37}, {}, 1), one_input({}, {}, 2), one_input({4, 0, 3}, {}, 3)};
}
std::vector<OpSample> flip_samples() {
  return {one_input({2, 37}, {{"axes", Dims64{1}}}, 1),
          one_input({3, 4, 5}, {{"axes", Dims64{0, 2}}}, 2),
          one_input({3, 1, 5}, {{"axes", Dims64{-2}}}, 3),
          one_input({4, 0, 3}, {{"axes", Dims64{0}}}, 4)};
}
std::vector<OpSample> concat_samples() {
  return {{{samples::values({2, 3}, -2, 2, 1), samples::values({4, 3}, -2, 2, 2)},
           {{"axis", int64_t{0}}}},
          {{samples::values({2, 3}, -2, 2, 3), samples::values({2, 0}, -2, 2, 4),
            samples::values({2, 37}, -2, 2, 5)},
           {{"axis", int64_t{-1}}}},
          {{samples::values({5}, -2, 2, 6)}, {{"axis", int64_t{0}}}}};
}

Shape infer_reshape(const Shape& in, int64_t numel, const Shape& requested, const char* op) {
  Shape out = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      check(infer_at < 0, op, "only one dimension can be -1, got ", requested);
      infer_at = static_cast<int64_t>(i);
    } else {
      check(out[i] >= 0, op, "invalid dimension ", out[i], " in shape ", requested);
      // Checked: shapes can come from files (saved graphs).
      check(!__builtin_mul_overflow(known, out[i], &known), op, "shape ", requested,
            " has too many elements");
    }
  }
  if (infer_at >= 0) {
    check(known != 0 && numel % known == 0, op, "cannot reshape ", in, " (", numel,
          " elements) into ", requested);
    out[infer_at] = numel / known;
  }
  check(shape_numel(out) == numel, op, "cannot reshape ", in, " (", numel, " elements) into ",
        requested, " (", shape_numel(out), " elements)");
  return out;
}

// Strides viewing (shape, strides) as new_shape without copying, if possible (PyTorch's rule).
bool view_strides(const Shape& shape, const Dims& strides, const Shape& new_shape, Dims* out) {
  int64_t numel = shape_numel(shape);
  out->resize(new_shape.size());
  if (numel == 0 || shape.empty()) {
    *out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        (*out)[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) {
    // Remaining leading size-1 dims.
    while (view_d >= 0) {
      if (new_shape[view_d] != 1) return false;
      (*out)[view_d] = 1;
      --view_d;
    }
  }
  return true;
}

// ----------------------------------------------------------- reshape (view)

Tensor view_reshape(const OpCall& c) {
  const Tensor& x = c.in(0);
  // The attribute may keep one -1: traced graphs resolve it for each batch size.
  Shape target = infer_reshape(x.shape(), x.numel(), Shape(c.attrs.ints("shape")), "reshape");
  Dims strides;
  bool ok = view_strides(x.shape(), x.strides(), target, &strides);
  check(ok, "view", "shape ", target, " is not compatible with the strides ", x.strides(),
        " of the input (shape ", x.shape(), "); use reshape, which copies when needed");
  return make_view(x, target, strides, x.offset());
}
TensorList grad_reshape(const GradCall& g) { return {reshape(g.gout(), g.in_shape(0))}; }
constexpr OpDef kView = samples::with(
    {"reshape", nullptr, nullptr, view_reshape, grad_reshape, kSaveNothing}, reshape_samples);

// ----------------------------------------------------------- permute (view)

Tensor view_permute(const OpCall& c) {
  const Tensor& x = c.in(0);
  const auto& order = c.attrs.ints("order");
  check(static_cast<int64_t>(order.size()) == x.dim(), "permute", "order has ", order.size(),
        " axes for a tensor of ", x.dim(), " dimensions (shape ", x.shape(), ")");
  std::vector<bool> used(order.size(), false);
  Shape shape;
  Dims strides;
  for (int64_t a : order) {
    int64_t ax = normalize_axis(a, x.dim(), "permute");
    check(!used[ax], "permute", "axis ", a, " repeats in the order");
    used[ax] = true;
    shape.push_back(x.shape()[ax]);
    strides.push_back(x.strides()[ax]);
  }
  return make_view(x, shape, strides, x.offset());
}
TensorList grad_permute(const GradCall& g) {
  const auto& order = g.attrs.ints("order");
  Dims inverse(order.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    inverse[normalize_axis(order[i], order.size(), "permute")] = static_cast<int64_t>(i);
  }
  return {permute(g.gout(), inverse)};
}
constexpr OpDef kPermute = samples::with(
    {"permute", nullptr, nullptr, view_permute, grad_permute, kSaveNothing}, permute_samples);

// ----------------------------------------------------------- slice (view) and its gradient

struct SliceSpec {
  int64_t axis, start, stop, step, length;
};

SliceSpec resolve_slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  check(x.dim() > 0, "slice", "cannot slice a 0-d tensor");
  int64_t ax = normalize_axis(axis, x.dim(), "slice");
  check(step > 0, "slice", "step must be positive, got ", step);
  int64_t n = x.shape()[ax];
  auto clampi = [n](int64_t v) {
    if (v < 0) v += n;
    return std::min(std::max<int64_t>(v, 0), n);
  };
  int64_t s = clampi(start), e = clampi(stop);
  int64_t len = e > s ? 1 + (e - s - 1) / step : 0;  // no overflow for huge steps
  return {ax, s, e, step, len};
}

Tensor view_slice(const OpCall& c) {
  const Tensor& x = c.in(0);
  SliceSpec s =
      resolve_slice(x, c.attrs.i("axis"), c.attrs.i("start"), c.attrs.i("stop"), c.attrs.i("step"));
  Shape shape = x.shape();
  Dims strides = x.strides();
  shape[s.axis] = s.length;
  // One element or none: the step never applies (and may be huge).
  if (s.length > 1) {
    check(!__builtin_mul_overflow(x.strides()[s.axis], s.step, &strides[s.axis]), "slice", "step ",
          s.step, " overflows the stride");
  }
  return make_view(x, shape, strides, x.offset() + s.start * x.strides()[s.axis]);
}

// Writes g into a zero tensor of the input's shape at the sliced positions.
MetaList infer_slice_grad(const OpCall& c) {
  return {{Shape(c.attrs.ints("input_shape")), c.in(0).dtype()}};
}
void cpu_slice_grad(const OpCall& c, std::span<Tensor> outs) {
  Tensor out = outs[0];
  cpu::copy_into(zeros({}, out.dtype()), out);
  Tensor region = slice(out.detach(), c.attrs.i("axis"), c.attrs.i("start"), c.attrs.i("stop"),
                        c.attrs.i("step"));
  cpu::copy_into(c.in(0), region);
}
TensorList grad_slice_grad(const GradCall& g) {
  return {
      slice(g.gout(), g.attrs.i("axis"), g.attrs.i("start"), g.attrs.i("stop"), g.attrs.i("step"))};
}
constexpr OpDef kSliceGrad{"slice_grad", infer_slice_grad, cpu_slice_grad,
                           nullptr,      grad_slice_grad,  kSaveNothing};

TensorList grad_slice(const GradCall& g) { return {run_adjoint(kSliceGrad, g)}; }
constexpr OpDef kSlice =
    samples::with({"slice", nullptr, nullptr, view_slice, grad_slice, kSaveNothing}, slice_samples);

// ----------------------------------------------------------- expand (view)

Tensor view_expand(const OpCall& c) {
  const Tensor& x = c.in(0);
  Shape target(c.attrs.ints("shape"));
  check(target.size() >= x.shape().size(), "expand", "cannot expand shape ", x.shape(), " to ",
        target, " (fewer dimensions)");
  size_t lead = target.size() - x.shape().size();
  Dims strides(target.size(), 0);
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      check(target[i] >= 0, "expand", "invalid size ", target[i], " in ", target);
      continue;
    }
    int64_t have = x.shape()[i - lead];
    if (target[i] == -1) target[i] = have;
    check(target[i] >= 0, "expand", "invalid size ", target[i], " in ", target);
    check(have == target[i] || have == 1, "expand", "cannot expand shape ", x.shape(), " to ",
          target, " (dimension ", i, ": ", have, " vs ", target[i], ")");
    strides[i] = have == target[i] ? x.strides()[i - lead] : 0;
  }
  return make_view(x, target, strides, x.offset());
}
TensorList grad_expand(const GradCall& g) { return {sum_to(g.gout(), g.in_shape(0))}; }
constexpr OpDef kExpand = samples::with(
    {"expand", nullptr, nullptr, view_expand, grad_expand, kSaveNothing}, expand_samples);

// ----------------------------------------------------------- diagonal (view)

Tensor view_diagonal(const OpCall& c) {
  const Tensor& x = c.in(0);
  check(x.dim() >= 2, "diagonal", "needs at least 2 dimensions, got shape ", x.shape());
  int64_t a1 = normalize_axis(c.attrs.i("axis1"), x.dim(), "diagonal");
  int64_t a2 = normalize_axis(c.attrs.i("axis2"), x.dim(), "diagonal");
  check(a1 != a2, "diagonal", "axis1 and axis2 must differ, both are ", a1);
  int64_t off = c.attrs.i("offset");
  int64_t n1 = x.shape()[a1], n2 = x.shape()[a2];
  int64_t len = off >= 0 ? std::max<int64_t>(0, std::min(n1, n2 - off))
                         : std::max<int64_t>(0, std::min(n1 + off, n2));
  int64_t start = 0;
  if (len > 0) start = off >= 0 ? off * x.strides()[a2] : -off * x.strides()[a1];
  Shape shape;
  Dims strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == a1 || d == a2) continue;
    shape.push_back(x.shape()[d]);
    strides.push_back(x.strides()[d]);
  }
  shape.push_back(len);
  strides.push_back(x.strides()[a1] + x.strides()[a2]);
  return make_view(x, shape, strides, x.offset() + start);
}
MetaList infer_diagonal_grad(const OpCall& c) {
  return {{Shape(c.attrs.ints("input_shape")), c.in(0).dtype()}};
}
void cpu_diagonal_grad(const OpCall& c, std::span<Tensor> outs) {
  Tensor out = outs[0];
  cpu::copy_into(zeros({}, out.dtype()), out);
  cpu::copy_into(
      c.in(0), diagonal(out.detach(), c.attrs.i("offset"), c.attrs.i("axis1"), c.attrs.i("axis2")));
}
TensorList grad_diagonal_grad(const GradCall& g) {
  return {diagonal(g.gout(), g.attrs.i("offset"), g.attrs.i("axis1"), g.attrs.i("axis2"))};
}
constexpr OpDef kDiagonalGrad{"diagonal_grad", infer_diagonal_grad, cpu_diagonal_grad,
                              nullptr,         grad_diagonal_grad,  kSaveNothing};
TensorList grad_diagonal(const GradCall& g) { return {run_adjoint(kDiagonalGrad, g)}; }
constexpr OpDef kDiagonal = samples::with(
    {"diagonal", nullptr, nullptr, view_diagonal, grad_diagonal, kSaveNothing}, diagonal_samples);

// ----------------------------------------------------------- copies

MetaList infer_copy(const OpCall& c) { return {{c.in(0).shape(), c.in(0).dtype()}}; }
void cpu_copy(const OpCall& c, std::span<Tensor> outs) { cpu::copy_into(c.in(0), outs[0]); }
TensorList grad_copy(const GradCall& g) { return {g.gout()}; }
constexpr OpDef kCopy =
    samples::with({"copy", infer_copy, cpu_copy, nullptr, grad_copy, kSaveNothing}, copy_samples);

void cpu_flip(const OpCall& c, std::span<Tensor> outs) {
  const Tensor& x = c.in(0);
  Dims strides = x.strides();
  int64_t offset = x.offset();
  std::vector<bool> flipped(x.dim(), false);
  for (int64_t a : c.attrs.ints("axes")) {
    int64_t ax = normalize_axis(a, x.dim(), "flip");
    if (x.dim() == 0) continue;  // flipping a 0-d tensor leaves it as it is (PyTorch too)
    check(!flipped[ax], "flip", "axis ", a, " repeats");
    flipped[ax] = true;
    if (x.shape()[ax] > 0) offset += (x.shape()[ax] - 1) * strides[ax];
    strides[ax] = -strides[ax];
  }
  if (x.numel() == 0) return;
  cpu::copy_into(make_view(x, x.shape(), strides, offset), outs[0]);
}
MetaList infer_flip(const OpCall& c) {
  for (int64_t a : c.attrs.ints("axes")) normalize_axis(a, c.in(0).dim(), "flip");
  return infer_copy(c);
}
TensorList grad_flip(const GradCall& g) { return {flip(g.gout(), g.attrs.ints("axes"))}; }
constexpr OpDef kFlip =
    samples::with({"flip", infer_flip, cpu_flip, nullptr, grad_flip, kSaveNothing}, flip_samples);

// ----------------------------------------------------------- concat

MetaList infer_concat(const OpCall& c) {
  check(!c.inputs.empty(), "concat", "needs at least one tensor");
  const Tensor& first = c.in(0);
  check(first.dim() > 0, "concat", "cannot concatenate 0-d tensors (stack them instead)");
  int64_t axis = normalize_axis(c.attrs.i("axis"), first.dim(), "concat");
  Shape out = first.shape();
  DType dtype = first.dtype();
  out[axis] = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.in(i);
    check(t.dim() == first.dim(), "concat", "tensor ", i, " has shape ", t.shape(), ", expected ",
          first.dim(), " dimensions like tensor 0 ", first.shape());
    for (int64_t d = 0; d < t.dim(); ++d) {
      check(d == axis || t.shape()[d] == first.shape()[d], "concat", "tensor ", i, " has shape ",
            t.shape(), ", which differs from tensor 0 ", first.shape(), " outside axis ", axis);
    }
    check(!__builtin_add_overflow(out[axis], t.shape()[axis], &out[axis]), "concat",
          "the sizes along axis ", axis, " add up to more than int64 holds");
    dtype = promote_types(dtype, t.dtype());
  }
  return {{out, dtype}};
}
void cpu_concat(const OpCall& c, std::span<Tensor> outs) {
  int64_t axis = normalize_axis(c.attrs.i("axis"), c.in(0).dim(), "concat");
  int64_t at = 0;
  for (const Tensor& t : c.inputs) {
    int64_t n = t.shape()[axis];
    cpu::copy_into(t, narrow(outs[0].detach(), axis, at, n));
    at += n;
  }
}
TensorList grad_concat(const GradCall& g) {
  int64_t axis = normalize_axis(g.attrs.i("axis"), g.in_shape(0).size(), "concat");
  TensorList grads;
  int64_t at = 0;
  for (size_t i = 0; i < g.input_metas.size(); ++i) {
    int64_t n = g.in_shape(i)[axis];
    grads.push_back(g.needs(i) ? narrow(g.gout(), axis, at, n) : Tensor());
    at += n;
  }
  return grads;
}
constexpr OpDef kConcat = samples::with(
    {"concat", infer_concat, cpu_concat, nullptr, grad_concat, kSaveNothing}, concat_samples);

const OpRegistrar r1(kView), r2(kPermute), r3(kSlice), r4(kSliceGrad), r5(kExpand), r6(kDiagonal),
    r7(kDiagonalGrad), r8(kCopy), r9(kFlip), r10(kConcat);

std::vector<int64_t> dims_vec(const Dims& d) { return d.vec(); }

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined(x, "reshape", "input");
  Shape target = infer_reshape(x.shape(), x.numel(), shape, "reshape");
  // While tracing, a -1 stays in the attribute: the size it stands for may be a multiple
  // of the unknown batch size (merging batch and heads), which the graph recomputes.
  Attrs attrs{{"shape", dims_vec(active_tracer() ? shape : target)}};
  Dims strides;
  if (target == x.shape() || view_strides(x.shape(), x.strides(), target, &strides)) {
    return run_op1(kView, {x}, attrs);
  }
  return run_op1(kView, {contiguous(x)}, attrs);
}

Tensor view(const Tensor& x, const Shape& shape) {
  check_defined(x, "view", "input");
  Shape target = infer_reshape(x.shape(), x.numel(), shape, "view");
  return run_op1(kView, {x}, {{"shape", dims_vec(active_tracer() ? shape : target)}});
}

Tensor flatten(const Tensor& x, int64_t start_axis, int64_t end_axis) {
  check_defined(x, "flatten", "input");
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = normalize_axis(start_axis, x.dim(), "flatten");
  int64_t e = normalize_axis(end_axis, x.dim(), "flatten");
  check(s <= e, "flatten", "start axis ", start_axis, " comes after end axis ", end_axis);
  Shape shape;
  for (int64_t d = 0; d < s; ++d) shape.push_back(x.shape()[d]);
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= x.shape()[d];
  shape.push_back(merged);
  for (int64_t d = e + 1; d < x.dim(); ++d) shape.push_back(x.shape()[d]);
  return reshape(x, shape);
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  check_defined(x, "transpose", "input");
  if (x.dim() == 0) return x;
  Dims order;
  for (int64_t d = 0; d < x.dim(); ++d) order.push_back(d);
  std::swap(order[normalize_axis(a, x.dim(), "transpose")],
            order[normalize_axis(b, x.dim(), "transpose")]);
  return permute(x, order);
}

Tensor permute(const Tensor& x, const Dims& order) {
  return run_op1(kPermute, {x}, {{"order", order.vec()}});
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  return run_op1(kSlice, {x}, {{"axis", axis}, {"start", start}, {"stop", stop}, {"step", step}});
}

Tensor narrow(const Tensor& x, int64_t axis, int64_t start, int64_t length) {
  check_defined(x, "narrow", "input");
  check(x.dim() > 0, "narrow", "cannot narrow a 0-d tensor");
  int64_t ax = normalize_axis(axis, x.dim(), "narrow");
  int64_t n = x.shape()[ax];
  if (start < 0) start += n;
  // (Compared without forming start + length, which may overflow.)
  check(start >= 0 && start <= n && length >= 0 && length <= n - start, "narrow", "length ", length,
        " from ", start, " is outside axis ", ax, " of size ", n, " (shape ", x.shape(), ")");
  return slice(x, ax, start, start + length, 1);
}

Tensor select(const Tensor& x, int64_t axis, int64_t index) {
  check_defined(x, "select", "input");
  check(x.dim() > 0, "select", "cannot index a 0-d tensor");
  int64_t ax = normalize_axis(axis, x.dim(), "select");
  int64_t n = x.shape()[ax];
  check(index >= -n && index < n, "select", "index ", index, " is out of range for axis ", ax,
        " of size ", n, " (shape ", x.shape(), ")");
  if (index < 0) index += n;
  return squeeze(slice(x, ax, index, index + 1, 1), ax);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  if (shape == x.shape()) return x;
  return run_op1(kExpand, {x}, {{"shape", dims_vec(shape)}});
}
Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

Tensor squeeze(const Tensor& x) {
  check_defined(x, "squeeze", "input");
  Shape s;
  for (int64_t d : x.shape()) {
    if (d != 1) s.push_back(d);
  }
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, int64_t axis) {
  check_defined(x, "squeeze", "input");
  if (x.dim() == 0) return x;
  int64_t ax = normalize_axis(axis, x.dim(), "squeeze");
  if (x.shape()[ax] != 1) return x;
  Shape s = x.shape();
  s.erase(ax);
  return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, int64_t axis) {
  check_defined(x, "unsqueeze", "input");
  check(x.dim() < kMaxDims, "unsqueeze", "a tensor of ", x.dim(), " dimensions (the most there ",
        "can be) cannot gain one");
  int64_t ax = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(ax, 1);
  return reshape(x, s);
}

Tensor diagonal(const Tensor& x, int64_t offset, int64_t axis1, int64_t axis2) {
  return run_op1(kDiagonal, {x}, {{"offset", offset}, {"axis1", axis1}, {"axis2", axis2}});
}

Tensor contiguous(const Tensor& x) {
  check_defined(x, "contiguous", "input");
  return x.is_contiguous() ? x : run_op1(kCopy, {x});
}
Tensor clone(const Tensor& x) { return run_op1(kCopy, {x}); }

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis) {
  return run_op1(kConcat, std::span<const Tensor>(tensors), {{"axis", axis}});
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t axis) {
  check(!tensors.empty(), "stack", "needs at least one tensor");
  int64_t ax = normalize_axis(axis, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    check(tensors[i].shape() == tensors[0].shape(), "stack", "tensor ", i, " has shape ",
          tensors[i].shape(), ", expected ", tensors[0].shape(), " like tensor 0");
    parts.push_back(unsqueeze(tensors[i], ax));
  }
  return concat(parts, ax);
}

// The axis of x that split and chunk cut: x must have one.
int64_t split_axis(const Tensor& x, int64_t axis, const char* op) {
  check_defined(x, op, "input");
  check(x.dim() > 0, op, "cannot split a 0-d tensor");
  return normalize_axis(axis, x.dim(), op);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t axis) {
  check(split_size > 0, "split", "split size must be positive, got ", split_size);
  int64_t ax = split_axis(x, axis, "split");
  std::vector<Tensor> out;
  const int64_t n = x.shape()[ax];
  for (int64_t at = 0;;) {  // (at + split_size is never formed: it may overflow)
    const int64_t length = std::min(split_size, n - at);
    out.push_back(narrow(x, ax, at, length));
    if (length == n - at) break;
    at += length;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  int64_t ax = split_axis(x, axis, "split");
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || __builtin_add_overflow(total, sizes[i], &total)) {
      fail("split", "sizes must be non-negative and add up to the axis' size, got ", sizes[i],
           " at position ", i);
    }
  }
  check(total == x.shape()[ax], "split", "sizes add up to ", total, ", but axis ", ax, " has size ",
        x.shape()[ax]);
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, ax, at, s));
    at += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis) {
  check(chunks > 0, "chunk", "number of chunks must be positive, got ", chunks);
  int64_t n = x.shape()[split_axis(x, axis, "chunk")];
  return split(x, std::max<int64_t>(1, n / chunks + (n % chunks != 0)), axis);
}

Tensor tile(const Tensor& x, const std::vector<int64_t>& reps) {
  check_defined(x, "tile", "input");
  size_t nd = std::max(reps.size(), static_cast<size_t>(x.dim()));
  check(nd <= static_cast<size_t>(kMaxDims), "tile", reps.size(), " repetitions exceed the ",
        kMaxDims, " dimensions a tensor can have");
  Shape in(nd - x.dim(), 1);
  for (int64_t d : x.shape()) in.push_back(d);
  std::vector<int64_t> r(nd - reps.size(), 1);
  r.insert(r.end(), reps.begin(), reps.end());
  Shape interleaved, expanded, result;
  for (size_t d = 0; d < nd; ++d) {
    check(r[d] >= 0, "tile", "repetitions must be non-negative");
    interleaved.push_back(1);
    interleaved.push_back(in[d]);
    expanded.push_back(r[d]);
    expanded.push_back(in[d]);
    int64_t size = 0;
    check(!__builtin_mul_overflow(r[d], in[d], &size), "tile", r[d], " repetitions of size ", in[d],
          " overflow int64");
    result.push_back(size);
  }
  return reshape(expand(reshape(x, interleaved), expanded), result);
}

Tensor repeat_interleave(const Tensor& x, int64_t repeats, int64_t axis) {
  check_defined(x, "repeat_interleave", "input");
  check(repeats >= 0, "repeat_interleave", "repeats must be non-negative, got ", repeats);
  check(x.dim() > 0, "repeat_interleave", "a 0-d tensor has no axis to repeat along (reshape ",
        "it to [1] first)");
  int64_t ax = normalize_axis(axis, x.dim(), "repeat_interleave");
  Tensor u = unsqueeze(x, ax + 1);
  Shape e = u.shape();
  e[ax + 1] = repeats;
  Shape result = x.shape();
  check(!__builtin_mul_overflow(result[ax], repeats, &result[ax]), "repeat_interleave", repeats,
        " repetitions of size ", x.shape()[ax], " overflow int64");
  return reshape(expand(u, e), result);
}

Tensor flip(const Tensor& x, const std::vector<int64_t>& axes) {
  return run_op1(kFlip, {x}, {{"axes", axes}});
}

Tensor roll(const Tensor& x, int64_t shift, int64_t axis) {
  check_defined(x, "roll", "input");
  int64_t ax = normalize_axis(axis, x.dim(), "roll");
  if (x.dim() == 0) return clone(x);  // one element: any shift leaves it (PyTorch too)
  int64_t n = x.shape()[ax];
  if (n == 0) return clone(x);
  int64_t s = ((shift % n) + n) % n;
  if (s == 0) return clone(x);
  return concat({narrow(x, ax, n - s, s), narrow(x, ax, 0, n - s)}, ax);
}

static Tensor triangle_mask(const Tensor& x, int64_t diagonal, bool lower, const char* op) {
  check(x.dim() >= 2, op, "needs at least 2 dimensions, got shape ", x.shape());
  int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1];
  Tensor r = reshape(arange(0, rows), {rows, 1});
  Tensor c = reshape(arange(0, cols), {1, cols});
  Tensor diff = sub(c, r);  // column - row
  return lower ? le(diff, scalar_tensor(diagonal, DType::Int64))
               : ge(diff, scalar_tensor(diagonal, DType::Int64));
}

Tensor tril(const Tensor& x, int64_t diagonal) {
  return where(triangle_mask(x, diagonal, true, "tril"), x, zeros({}, x.dtype()));
}
Tensor triu(const Tensor& x, int64_t diagonal) {
  return where(triangle_mask(x, diagonal, false, "triu"), x, zeros({}, x.dtype()));
}

std::vector<Tensor> meshgrid(const std::vector<Tensor>& tensors, bool ij_indexing) {
  Shape shape;
  for (const Tensor& t : tensors) {
    check(t.dim() <= 1, "meshgrid", "expects 0-d or 1-d tensors, got shape ", t.shape());
    shape.push_back(t.numel());
  }
  if (!ij_indexing && tensors.size() >= 2) std::swap(shape[0], shape[1]);
  std::vector<Tensor> out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    size_t pos = i;
    if (!ij_indexing && tensors.size() >= 2 && i < 2) pos = 1 - i;
    Shape s(shape.size(), 1);
    s[pos] = tensors[i].numel();
    out.push_back(expand(reshape(tensors[i], s), shape));
  }
  return out;
}

}  // namespace tessera
