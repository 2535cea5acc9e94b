// Indexing ops (gather/scatter, index_select, take, take_along_axis, masks, one_hot,
// sort/argsort/topk, unique, nonzero) against plain-loop references on random shapes,
// dtypes and strided inputs; gradients (first and second order); error messages.
#include <algorithm>
#include <map>
#include <numeric>

#include "tessera/ops/index.h"
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// ------------------------------------------------------------------ helpers

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + idx[d];
  return flat;
}

Tensor make(const std::vector<double>& values, const Shape& shape, DType dtype) {
  return from_vector(values, {static_cast<int64_t>(values.size())}).reshape(shape).to(dtype);
}

Tensor make_ints(const std::vector<int64_t>& values, const Shape& shape,
                 DType dtype = DType::Int64) {
  return from_vector(values, {static_cast<int64_t>(values.size())}).reshape(shape).to(dtype);
}

// A 1-d int64 tensor.
Tensor make_ints(const std::vector<int64_t>& values) {
  return make_ints(values, {static_cast<int64_t>(values.size())});
}

Tensor random_index(int64_t n, const Shape& shape, DType dtype, uint64_t seed) {
  if (shape_numel(shape) == 0 || n == 0) return zeros(shape, dtype);
  Generator gen(seed);
  return randint(0, n, shape, dtype, &gen);
}

// Values distinct with probability one, so sort/topk have no ties.
Tensor random_values(const Shape& shape, DType dtype, uint64_t seed) {
  return is_floating(dtype) ? random_tensor(shape, dtype, -1, 1, seed)
                            : random_tensor(shape, dtype, -50, 50, seed);
}

// The same values in a strided (non-contiguous) layout: every other element of a wider tensor.
Tensor strided(const Tensor& t) {
  if (t.dim() == 0) return t;
  Shape wide = t.shape();
  wide[wide.size() - 1] *= 2;
  Tensor base = zeros(wide, t.dtype());
  Tensor view = base.slice(-1, 0, wide[wide.size() - 1], 2);
  NoGradGuard guard;
  view.copy_(t);
  return view;
}

// The same values through a transposed layout (first and last axes swapped in memory).
Tensor transposed(const Tensor& t) {
  if (t.dim() < 2) return strided(t);
  return t.transpose(0, -1).contiguous().transpose(0, -1);
}

enum class Layout { kContiguous, kStrided, kTransposed };
Tensor with_layout(const Tensor& t, Layout layout) {
  switch (layout) {
    case Layout::kStrided:
      return strided(t);
    case Layout::kTransposed:
      return transposed(t);
    default:
      return t;
  }
}
const Layout kLayouts[] = {Layout::kContiguous, Layout::kStrided, Layout::kTransposed};
const DType kIndexTypes[] = {DType::Int32, DType::Int64};
const DType kValueTypes[] = {DType::Float32, DType::Float64, DType::Int32};

std::string label(const Shape& s, int64_t axis, DType v, DType i, Layout l) {
  return to_string(s) + " axis " + std::to_string(axis) + " " + dtype_name(v) + "/" +
         dtype_name(i) + " layout " + std::to_string(static_cast<int>(l));
}

void expect_equal(const Tensor& actual, const Tensor& expected, const std::string& what = "") {
  EXPECT_EQ(actual.dtype(), expected.dtype()) << what;
  expect_close(actual, expected, 0, 0, what);
}

// ------------------------------------------------------------------ references

int64_t norm_axis(int64_t axis, int64_t nd) {
  return axis < 0 ? axis + std::max<int64_t>(nd, 1) : axis;
}

Tensor ref_gather(const Tensor& x, int64_t axis, const Tensor& index) {
  axis = norm_axis(axis, x.dim());
  std::vector<double> xv = x.to_vector<double>(), out;
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  for (int64_t p = 0; p < index.numel(); ++p) {
    std::vector<int64_t> m = unravel(p, index.shape());
    if (!m.empty()) m[axis] = iv[p];
    out.push_back(xv[ravel(m, x.shape())]);
  }
  return make(out, index.shape(), x.dtype());
}

Tensor ref_scatter(const Tensor& x, int64_t axis, const Tensor& index, const Tensor& src,
                   bool add) {
  axis = norm_axis(axis, x.dim());
  std::vector<double> out = x.to_vector<double>(), sv = src.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  for (int64_t p = 0; p < index.numel(); ++p) {
    std::vector<int64_t> m = unravel(p, index.shape());
    double v = sv[ravel(m, src.shape())];
    if (!m.empty()) m[axis] = iv[p];
    double& dst = out[ravel(m, x.shape())];
    dst = add ? dst + v : v;
  }
  return make(out, x.shape(), x.dtype());
}

Tensor ref_index_select(const Tensor& x, int64_t axis, const std::vector<int64_t>& idx) {
  axis = norm_axis(axis, x.dim());
  Shape shape = x.shape();
  shape[axis] = static_cast<int64_t>(idx.size());
  std::vector<double> xv = x.to_vector<double>(), out;
  for (int64_t p = 0; p < shape_numel(shape); ++p) {
    std::vector<int64_t> m = unravel(p, shape);
    m[axis] = idx[m[axis]];
    out.push_back(xv[ravel(m, x.shape())]);
  }
  return make(out, shape, x.dtype());
}

bool ref_less(double a, double b) { return !std::isnan(a) && (std::isnan(b) || a < b); }

// Sorted positions of every row along axis: stable, NaN largest.
struct RefSort {
  Tensor values, indices;
};
RefSort ref_sort(const Tensor& x, int64_t axis, bool descending, int64_t k = -1,
                 bool sorted = true) {
  axis = norm_axis(axis, x.dim());
  Shape xs = x.dim() == 0 ? Shape{1} : x.shape();
  int64_t n = xs[axis];
  if (k < 0) k = n;
  Shape os = xs;
  os[axis] = k;
  std::vector<double> xv = x.to_vector<double>(), vals(shape_numel(os));
  std::vector<int64_t> inds(shape_numel(os));
  for (int64_t p = 0; p < shape_numel(xs); ++p) {
    std::vector<int64_t> m = unravel(p, xs);
    if (m[axis] != 0) continue;
    std::vector<int64_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    auto at = [&](int64_t i) {
      std::vector<int64_t> q = m;
      q[axis] = i;
      return xv[ravel(q, xs)];
    };
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return descending ? ref_less(at(b), at(a)) : ref_less(at(a), at(b));
    });
    perm.resize(k);
    if (!sorted) std::sort(perm.begin(), perm.end());
    for (int64_t j = 0; j < k; ++j) {
      std::vector<int64_t> q = m;
      q[axis] = j;
      vals[ravel(q, os)] = at(perm[j]);
      inds[ravel(q, os)] = perm[j];
    }
  }
  Shape out_shape = x.dim() == 0 ? Shape{} : os;
  return {make(vals, out_shape, x.dtype()), make_ints(inds, out_shape)};
}

// ------------------------------------------------------------------ gather / scatter

struct GatherCase {
  Shape x, index;
  int64_t axis;
};
const GatherCase kGatherCases[] = {
    {{3, 4}, {5, 4}, 0},        {{3, 4}, {2, 6}, 1}, {{2, 1, 5}, {2, 1, 3}, 2},
    {{2, 1, 5}, {1, 1, 7}, -1}, {{4}, {6}, 0},       {{0, 3}, {0, 2}, 1},
    {{3, 4}, {0, 4}, 0},        {{}, {}, 0},         {{2, 3, 4}, {2, 2, 4}, 1},
};

TEST(Gather, MatchesReference) {
  uint64_t seed = 1;
  for (const GatherCase& c : kGatherCases) {
    int64_t axis = norm_axis(c.axis, c.x.size());
    int64_t n = c.x.empty() ? 1 : c.x[axis];
    for (DType vt : kValueTypes) {
      for (DType it : kIndexTypes) {
        for (Layout l : kLayouts) {
          Tensor x = with_layout(random_values(c.x, vt, ++seed), l);
          Tensor index = with_layout(random_index(n, c.index, it, ++seed), l);
          expect_equal(gather(x, c.axis, index), ref_gather(x, c.axis, index),
                       "gather " + label(c.x, c.axis, vt, it, l));
        }
      }
    }
  }
}

TEST(Gather, BroadcastViewsAndHalfTypes) {
  // An expanded (stride 0) input and bfloat16 values move through unchanged.
  Tensor x = arange(0, 4).to(DType::Float32).reshape({1, 4}).expand({3, 4});
  Tensor index = make_ints({3, 0, 1, 1, 2, 2}, {3, 2}, DType::Int32);
  expect_equal(gather(x, 1, index), make({3, 0, 1, 1, 2, 2}, {3, 2}, DType::Float32));
  Tensor h = arange(0, 6).to(DType::BFloat16).reshape({2, 3});
  expect_equal(gather(h, 0, make_ints({1, 0, 1}, {1, 3})),
               make({3, 1, 5}, {1, 3}, DType::BFloat16));
}

struct ScatterCase {
  Shape x, index, src;
  int64_t axis;
};
const ScatterCase kScatterCases[] = {
    {{3, 4}, {2, 4}, {3, 5}, 0},
    {{3, 4}, {3, 2}, {3, 2}, 1},
    {{2, 1, 5}, {2, 1, 7}, {2, 2, 7}, 2},
    {{4}, {6}, {6}, 0},
    {{0, 3}, {0, 2}, {0, 2}, 1},
    {{3, 4}, {0, 4}, {0, 4}, 0},
    {{}, {}, {}, 0},
    {{2, 3, 4}, {2, 5, 3}, {2, 5, 4}, -2},
};

TEST(Scatter, MatchesReference) {
  uint64_t seed = 100;
  for (const ScatterCase& c : kScatterCases) {
    int64_t axis = norm_axis(c.axis, c.x.size());
    int64_t n = c.x.empty() ? 1 : c.x[axis];
    for (DType vt : kValueTypes) {
      for (DType it : kIndexTypes) {
        for (Layout l : kLayouts) {
          std::string what = label(c.x, c.axis, vt, it, l);
          Tensor x = with_layout(random_values(c.x, vt, ++seed), l);
          Tensor src = with_layout(random_values(c.src, vt, ++seed), l);
          Tensor index = with_layout(random_index(n, c.index, it, ++seed), l);
          expect_equal(scatter(x, c.axis, index, src), ref_scatter(x, c.axis, index, src, false),
                       "scatter " + what);
          expect_close(scatter_add(x, c.axis, index, src), ref_scatter(x, c.axis, index, src, true),
                       1e-6, 1e-6, "scatter_add " + what);
          EXPECT_EQ(scatter_add(x, c.axis, index, src).dtype(), vt);
        }
      }
    }
  }
}

TEST(Scatter, LastWriteWinsAndInputUntouched) {
  Tensor x = zeros({2, 3});
  Tensor out = scatter(x, 1, make_ints({0, 0, 2, 1, 1, 1}, {2, 3}), tensor({{1, 2, 3}, {4, 5, 6}}));
  expect_equal(out, tensor({{2, 0, 3}, {0, 6, 0}}));
  expect_equal(x, zeros({2, 3}));
  Tensor added =
      scatter_add(x, 1, make_ints({0, 0, 2, 1, 1, 1}, {2, 3}), tensor({{1, 2, 3}, {4, 5, 6}}));
  expect_equal(added, tensor({{3, 0, 3}, {0, 15, 0}}));
  // Bool scatter_add is a logical or.
  Tensor b = scatter_add(zeros({3}, DType::Bool), 0, make_ints({2, 2}, {2}),
                         tensor({0, 1}).to(DType::Bool));
  EXPECT_EQ(b.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1}));
}

TEST(Scatter, DeterministicAcrossThreadCounts) {
  Tensor x = random_tensor({64, 700}, DType::Float32, -1, 1, 5);
  Tensor src = random_tensor({64, 900}, DType::Float32, -1, 1, 6);
  Tensor index = random_index(700, {64, 900}, DType::Int64, 7);
  int threads = num_threads();
  set_num_threads(1);
  std::vector<float> one = scatter_add(x, 1, index, src).to_vector<float>();
  std::vector<float> g1 = gather(src, 1, index).to_vector<float>();
  set_num_threads(std::max(2, threads));
  std::vector<float> many = scatter_add(x, 1, index, src).to_vector<float>();
  std::vector<float> g2 = gather(src, 1, index).to_vector<float>();
  set_num_threads(threads);
  EXPECT_EQ(one, many);
  EXPECT_EQ(g1, g2);
}

// ------------------------------------------------------------------ index_select / take

TEST(IndexSelect, MatchesReference) {
  struct Case {
    Shape x;
    int64_t axis, k;
  };
  const Case cases[] = {{{3, 4}, 0, 5}, {{3, 4}, 1, 0}, {{2, 1, 5}, 1, 3}, {{5}, 0, 7},
                        {{0, 3}, 1, 2}, {{3, 0}, 0, 2}, {{2, 3, 4}, -1, 6}};
  uint64_t seed = 200;
  for (const Case& c : cases) {
    int64_t axis = norm_axis(c.axis, c.x.size());
    for (DType vt : kValueTypes) {
      for (DType it : kIndexTypes) {
        for (Layout l : kLayouts) {
          Tensor x = with_layout(random_values(c.x, vt, ++seed), l);
          Tensor index = with_layout(random_index(c.x[axis], {c.k}, it, ++seed), l);
          expect_equal(index_select(x, c.axis, index),
                       ref_index_select(x, c.axis, index.to_vector<int64_t>()),
                       "index_select " + label(c.x, c.axis, vt, it, l));
        }
      }
    }
  }
  // A 0-d index keeps the axis with size 1.
  Tensor x = arange(0, 6).reshape({2, 3});
  expect_equal(index_select(x, 1, scalar_tensor(2, DType::Int32)), make_ints({2, 5}, {2, 1}));
}

TEST(Take, IntegerArrayIndexing) {
  uint64_t seed = 300;
  for (DType it : kIndexTypes) {
    for (Layout l : kLayouts) {
      Tensor x = with_layout(random_values({3, 4, 2}, DType::Float32, ++seed), l);
      // Indices from -4 to 3 along axis 1, in a 2-d shape.
      Tensor raw = random_index(8, {2, 3}, DType::Int64, ++seed);
      Tensor indices = with_layout(sub(raw, wrap_scalar(4, raw)).to(it), l);
      Tensor out = take(x, indices, 1);
      ASSERT_EQ(out.shape(), Shape({3, 2, 3, 2}));
      std::vector<double> xv = x.to_vector<double>(), ov = out.to_vector<double>();
      std::vector<int64_t> iv = indices.to_vector<int64_t>();
      for (int64_t p = 0; p < out.numel(); ++p) {
        std::vector<int64_t> m = unravel(p, out.shape());
        int64_t i = iv[m[1] * 3 + m[2]];
        if (i < 0) i += 4;
        EXPECT_EQ(ov[p], xv[ravel({m[0], i, m[3]}, x.shape())]);
      }
    }
  }
  // A 0-d index drops the axis; an empty index gives an empty axis.
  Tensor x = arange(0, 6).reshape({2, 3});
  expect_equal(take(x, scalar_tensor(-1, DType::Int64), 1), make_ints({2, 5}, {2}));
  EXPECT_EQ(take(x, zeros({0, 2}, DType::Int32), 0).shape(), Shape({0, 2, 3}));
}

TEST(TakeAlongAxis, BroadcastsAndInvertsArgsort) {
  uint64_t seed = 400;
  for (DType it : kIndexTypes) {
    Tensor x = random_values({3, 1, 4}, DType::Float64, ++seed);
    Tensor indices = random_index(4, {1, 5, 2}, it, ++seed);
    Tensor out = take_along_axis(x, indices, 2);
    Tensor expected =
        ref_gather(x.expand({3, 5, 4}).contiguous(), 2, indices.expand({3, 5, 2}).contiguous());
    expect_equal(out, expected, "take_along_axis");
  }
  for (Layout l : kLayouts) {
    Tensor x = with_layout(random_values({4, 6}, DType::Float32, ++seed), l);
    expect_equal(take_along_axis(x, argsort(x, 0), 0), sort(x, 0).values);
    expect_equal(take_along_axis(x, argsort(x, 1, true), 1), sort(x, 1, true).values);
  }
}

// ------------------------------------------------------------------ masks

TEST(Masks, MaskedFill) {
  uint64_t seed = 500;
  const std::pair<Shape, Shape> cases[] = {{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{3, 4}, {3, 1}},
                                           {{3, 4}, {}},     {{0, 2}, {2}}, {{}, {}}};
  for (const auto& [xs, ms] : cases) {
    for (DType vt : kValueTypes) {
      for (Layout l : kLayouts) {
        Tensor x = with_layout(random_values(xs, vt, ++seed), l);
        Tensor mask = with_layout(bernoulli(ms, 0.5, DType::Bool), l);
        Tensor out = masked_fill(x, mask, 7);
        std::vector<double> xv = x.to_vector<double>(), ov = out.to_vector<double>();
        std::vector<double> mv = mask.expand(xs).to_vector<double>();
        ASSERT_EQ(out.shape(), xs);
        EXPECT_EQ(out.dtype(), vt);
        for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(ov[i], mv[i] ? 7.0 : xv[i]);
        expect_equal(masked_fill(x, mask, scalar_tensor(7, DType::Float64)), out);
      }
    }
  }
}

TEST(Masks, MaskedSelectAndBooleanMask) {
  uint64_t seed = 600;
  const std::pair<Shape, Shape> select_cases[] = {{{3, 4}, {3, 4}}, {{3, 1}, {1, 4}}, {{4}, {2, 4}},
                                                  {{0, 3}, {3}},    {{}, {}},         {{2, 3}, {}}};
  for (const auto& [xs, ms] : select_cases) {
    for (DType vt : kValueTypes) {
      for (Layout l : kLayouts) {
        Tensor x = with_layout(random_values(xs, vt, ++seed), l);
        Tensor mask = with_layout(bernoulli(ms, 0.5, DType::Bool), l);
        Shape s = broadcast_shapes(xs, ms, "test");
        std::vector<double> xv = x.expand(s).to_vector<double>(), expected;
        std::vector<double> mv = mask.expand(s).to_vector<double>();
        for (size_t i = 0; i < xv.size(); ++i) {
          if (mv[i]) expected.push_back(xv[i]);
        }
        expect_equal(masked_select(x, mask),
                     make(expected, {static_cast<int64_t>(expected.size())}, vt),
                     "masked_select " + to_string(xs) + " " + to_string(ms));
      }
    }
  }
  const std::pair<Shape, Shape> mask_cases[] = {
      {{3, 4, 2}, {3}}, {{3, 4, 2}, {3, 4}}, {{3, 4, 2}, {3, 4, 2}}, {{0, 2}, {0}}, {{2}, {}}};
  for (const auto& [xs, ms] : mask_cases) {
    for (Layout l : kLayouts) {
      Tensor x = with_layout(random_values(xs, DType::Float32, ++seed), l);
      Tensor mask = with_layout(bernoulli(ms, 0.5, DType::Bool), l);
      std::vector<double> mv = mask.to_vector<double>();
      int64_t lead = mask.numel(), rest = x.numel() / std::max<int64_t>(lead, 1);
      std::vector<double> xv = x.to_vector<double>(), expected;
      Shape shape{0};
      for (int64_t i = 0; i < lead; ++i) {
        if (!mv[i]) continue;
        ++shape[0];
        for (int64_t j = 0; j < rest; ++j) expected.push_back(xv[i * rest + j]);
      }
      for (size_t d = ms.size(); d < xs.size(); ++d) shape.push_back(xs[d]);
      expect_equal(boolean_mask(x, mask), make(expected, shape, DType::Float32),
                   "boolean_mask " + to_string(xs) + " " + to_string(ms));
    }
  }
  // All false gives an empty result that keeps the trailing shape.
  EXPECT_EQ(boolean_mask(ones({3, 2}), zeros({3}, DType::Bool)).shape(), Shape({0, 2}));
}

TEST(Masks, OneHot) {
  for (DType it : kIndexTypes) {
    for (Layout l : kLayouts) {
      Tensor indices = with_layout(random_index(5, {2, 3}, it, 700), l);
      Tensor out = one_hot(indices, 6);
      ASSERT_EQ(out.shape(), Shape({2, 3, 6}));
      EXPECT_EQ(out.dtype(), DType::Int64);
      std::vector<int64_t> iv = indices.to_vector<int64_t>(), ov = out.to_vector<int64_t>();
      for (int64_t p = 0; p < out.numel(); ++p) EXPECT_EQ(ov[p], iv[p / 6] == p % 6 ? 1 : 0);
    }
  }
  Tensor inferred = one_hot(make_ints({0, 3, 1}, {3}));
  EXPECT_EQ(inferred.shape(), Shape({3, 4}));
  EXPECT_EQ(inferred.to_vector<int64_t>(),
            (std::vector<int64_t>{1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0}));
  EXPECT_EQ(one_hot(zeros({0}, DType::Int64), 3).shape(), Shape({0, 3}));
  EXPECT_EQ(one_hot(scalar_tensor(2, DType::Int32), 3).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 1}));
}

TEST(Masks, Nonzero) {
  uint64_t seed = 800;
  const Shape shapes[] = {{3, 4}, {5}, {2, 1, 3}, {0, 3}, {}};
  for (const Shape& s : shapes) {
    for (DType vt : {DType::Float32, DType::Int32, DType::Bool}) {
      for (Layout l : kLayouts) {
        // About a third of the values are zero.
        Tensor x = with_layout(floor(random_tensor(s, DType::Float64, 0, 3, ++seed)).to(vt), l);
        std::vector<double> xv = x.to_vector<double>();
        std::vector<int64_t> expected;
        int64_t count = 0;
        for (int64_t p = 0; p < x.numel(); ++p) {
          if (xv[p] == 0) continue;
          ++count;
          for (int64_t c : unravel(p, s)) expected.push_back(c);
        }
        Tensor out = nonzero(x);
        ASSERT_EQ(out.shape(), Shape({count, x.dim()})) << to_string(s);
        EXPECT_EQ(out.dtype(), DType::Int64);
        EXPECT_EQ(out.to_vector<int64_t>(), expected) << to_string(s);
      }
    }
  }
  EXPECT_EQ(nonzero(scalar_tensor(3, DType::Float32)).shape(), Shape({1, 0}));
  EXPECT_EQ(nonzero(scalar_tensor(0, DType::Float32)).shape(), Shape({0, 0}));
  EXPECT_EQ(nonzero(tensor({0, NAN, 1})).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

// ------------------------------------------------------------------ sorting

TEST(Sort, MatchesReference) {
  struct Case {
    Shape x;
    int64_t axis;
  };
  const Case cases[] = {{{7}, 0},    {{3, 7}, 1}, {{3, 7}, 0}, {{2, 1, 4}, 1},
                        {{0, 3}, 1}, {{4, 0}, 1}, {{}, 0},     {{2, 3, 5}, -2}};
  uint64_t seed = 900;
  for (const Case& c : cases) {
    for (DType vt : kValueTypes) {
      for (Layout l : kLayouts) {
        for (bool descending : {false, true}) {
          Tensor x = with_layout(random_values(c.x, vt, ++seed), l);
          std::string what = label(c.x, c.axis, vt, DType::Int64, l) + (descending ? " desc" : "");
          RefSort ref = ref_sort(x, c.axis, descending);
          ValuesIndices s = sort(x, c.axis, descending, true);
          expect_equal(s.values, ref.values, "sort values " + what);
          expect_equal(s.indices, ref.indices, "sort indices " + what);
          expect_equal(argsort(x, c.axis, descending, true), ref.indices, "argsort " + what);
          // The unstable sort orders the same values; its indices point at them.
          ValuesIndices u = sort(x, c.axis, descending, false);
          expect_equal(u.values, ref.values, "unstable sort " + what);
          if (x.dim() > 0) expect_equal(take_along_axis(x, u.indices, c.axis), ref.values);
        }
      }
    }
  }
}

TEST(Sort, TiesAndNaN) {
  // Ties keep their order with stable sorting, in both directions.
  Tensor x = tensor({2, 1, 2, 1, 3}, DType::Int32);
  ValuesIndices a = sort(x, 0, false, true);
  EXPECT_EQ(a.values.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2, 2, 3}));
  EXPECT_EQ(a.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0, 2, 4}));
  ValuesIndices d = sort(x, 0, true, true);
  EXPECT_EQ(d.indices.to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 2, 1, 3}));
  // NaN sorts as the largest value.
  Tensor n = tensor({3, NAN, 1, NAN, 2});
  ValuesIndices up = sort(n, 0, false, true), down = sort(n, 0, true, true);
  EXPECT_EQ(up.indices.to_vector<int64_t>(), (std::vector<int64_t>{2, 4, 0, 1, 3}));
  EXPECT_EQ(down.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0, 4, 2}));
  EXPECT_TRUE(std::isnan(down.values.to_vector<float>()[0]));
  ValuesIndices top = topk(n, 2);
  EXPECT_EQ(top.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(topk(n, 2, 0, false).indices.to_vector<int64_t>(), (std::vector<int64_t>{2, 4}));
  // Bool values sort too.
  EXPECT_EQ(argsort(tensor({1, 0, 1, 0}).to(DType::Bool), 0, false, true).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 3, 0, 2}));
}

TEST(TopK, MatchesReference) {
  struct Case {
    Shape x;
    int64_t axis, k;
  };
  const Case cases[] = {{{7}, 0, 3},    {{3, 7}, 1, 7}, {{3, 7}, 0, 2}, {{2, 1, 4}, 1, 1},
                        {{0, 3}, 1, 2}, {{4, 5}, 1, 0}, {{}, 0, 1},     {{2, 3, 5}, -1, 4}};
  uint64_t seed = 1000;
  for (const Case& c : cases) {
    for (DType vt : kValueTypes) {
      for (Layout l : kLayouts) {
        for (bool largest : {true, false}) {
          for (bool sorted : {true, false}) {
            Tensor x = with_layout(random_values(c.x, vt, ++seed), l);
            std::string what = label(c.x, c.axis, vt, DType::Int64, l) + " k " +
                               std::to_string(c.k) + (largest ? " largest" : " smallest") +
                               (sorted ? " sorted" : "");
            RefSort ref = ref_sort(x, c.axis, largest, c.k, sorted);
            ValuesIndices t = topk(x, c.k, c.axis, largest, sorted);
            expect_equal(t.values, ref.values, "topk values " + what);
            expect_equal(t.indices, ref.indices, "topk indices " + what);
          }
        }
      }
    }
  }
  // Ties take the lower position first.
  Tensor ties = tensor({1, 5, 5, 2, 5}, DType::Int64);
  EXPECT_EQ(topk(ties, 2).indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

TEST(Unique, MatchesReference) {
  uint64_t seed = 1100;
  const Shape shapes[] = {{4, 6}, {9}, {1}, {0, 3}, {}};
  for (const Shape& s : shapes) {
    for (DType vt : kValueTypes) {
      for (Layout l : kLayouts) {
        Tensor x = with_layout(floor(random_tensor(s, DType::Float64, -3, 3, ++seed)).to(vt), l);
        std::vector<double> xv = x.to_vector<double>();
        std::map<double, int64_t> counts;
        std::vector<double> first_seen;
        for (double v : xv) {
          if (counts[v]++ == 0) first_seen.push_back(v);
        }
        for (bool sorted : {true, false}) {
          std::vector<double> expected = first_seen;
          if (sorted) std::sort(expected.begin(), expected.end());
          std::vector<int64_t> expected_counts;
          for (double v : expected) expected_counts.push_back(counts[v]);
          std::vector<int64_t> expected_inverse;
          for (double v : xv) {
            expected_inverse.push_back(std::find(expected.begin(), expected.end(), v) -
                                       expected.begin());
          }
          std::string what = to_string(s) + " " + dtype_name(vt) + (sorted ? " sorted" : "");
          int64_t k = static_cast<int64_t>(expected.size());
          UniqueResult u = unique(x, sorted, true, true);
          expect_equal(u.values, make(expected, {k}, vt), "unique values " + what);
          expect_equal(u.counts, make_ints(expected_counts, {k}), "unique counts " + what);
          expect_equal(u.inverse, make_ints(expected_inverse, s), "unique inverse " + what);
          UniqueResult plain = unique(x, sorted);
          EXPECT_FALSE(plain.inverse.defined());
          EXPECT_FALSE(plain.counts.defined());
          expect_equal(plain.values, u.values);
        }
      }
    }
  }
}

// ------------------------------------------------------------------ gradients

TEST(IndexGrad, FirstOrder) {
  Tensor x = random_tensor({3, 4}, DType::Float64, -1, 1, 1);
  Tensor dup1 = random_index(4, {3, 5}, DType::Int64, 2);  // repeats positions
  Tensor dup0 = random_index(3, {2, 4}, DType::Int32, 3);
  gradcheck([&](const auto& in) { return gather(in[0], 1, dup1); }, {x}, 1e-6, 1e-5, 1e-4,
            "gather axis 1");
  gradcheck([&](const auto& in) { return gather(in[0], 0, dup0); }, {x}, 1e-6, 1e-5, 1e-4,
            "gather axis 0");
  // scatter: distinct positions per column so overwritten entries do not arise.
  Tensor perm0 = argsort(random_tensor({3, 4}, DType::Float64, 0, 1, 4), 0).slice(0, 0, 2);
  Tensor src = random_tensor({3, 5}, DType::Float64, -1, 1, 5);  // larger than the index
  gradcheck([&](const auto& in) { return scatter(in[0], 0, perm0, in[1]); }, {x, src}, 1e-6, 1e-5,
            1e-4, "scatter");
  gradcheck([&](const auto& in) { return scatter_add(in[0], 0, dup0, in[1]); }, {x, src}, 1e-6,
            1e-5, 1e-4, "scatter_add");
  Tensor rows = make_ints({2, 0, 2, 1, 2}, {5}, DType::Int32);
  gradcheck([&](const auto& in) { return index_select(in[0], 0, rows); }, {x}, 1e-6, 1e-5, 1e-4,
            "index_select");
  gradcheck([&](const auto& in) { return index_select(in[0].t(), 1, rows); }, {x}, 1e-6, 1e-5, 1e-4,
            "index_select strided");
  Tensor neg = make_ints({-1, 0, -4, 3, 3, -2}, {2, 3});
  gradcheck([&](const auto& in) { return take(in[0], neg, 1); }, {x}, 1e-6, 1e-5, 1e-4, "take");
  Tensor along = random_index(4, {1, 6}, DType::Int64, 6);
  gradcheck([&](const auto& in) { return take_along_axis(in[0], along, 1); }, {x}, 1e-6, 1e-5, 1e-4,
            "take_along_axis");
  Tensor row = random_tensor({1, 4}, DType::Float64, -1, 1, 7);
  Tensor along3 = random_index(4, {3, 6}, DType::Int32, 8);
  gradcheck([&](const auto& in) { return take_along_axis(in[0], along3, 1); }, {row}, 1e-6, 1e-5,
            1e-4, "take_along_axis broadcast input");
  Tensor col = random_tensor({3, 1}, DType::Float64, -1, 1, 9);
  Tensor mask = bernoulli({3, 4}, 0.5, DType::Bool);
  Tensor row_mask = tensor({1, 0, 1, 1}).to(DType::Bool);
  gradcheck([&](const auto& in) { return masked_fill(in[0], row_mask, -2.0); }, {x}, 1e-6, 1e-5,
            1e-4, "masked_fill");
  gradcheck([&](const auto& in) { return masked_fill(in[0], mask, in[1]); },
            {x, scalar_tensor(0.5, DType::Float64)}, 1e-6, 1e-5, 1e-4, "masked_fill tensor value");
  gradcheck([&](const auto& in) { return masked_select(in[0], mask); }, {x}, 1e-6, 1e-5, 1e-4,
            "masked_select");
  gradcheck(
      [&](const auto& in) {
        return masked_select(in[0], row_mask.reshape({1, 4}).expand({3, 4}));
      },
      {col}, 1e-6, 1e-5, 1e-4, "masked_select broadcast");
  gradcheck(
      [&](const auto& in) {
        return boolean_mask(in[0], tensor({1, 0, 1}).to(DType::Bool));
      },
      {x}, 1e-6, 1e-5, 1e-4, "boolean_mask");
  // Random float64 values have no ties.
  gradcheck([](const auto& in) { return sort(in[0], 1).values; }, {x}, 1e-6, 1e-5, 1e-4, "sort");
  gradcheck([](const auto& in) { return sort(in[0], 0, true).values; }, {x}, 1e-6, 1e-5, 1e-4,
            "sort descending");
  gradcheck([](const auto& in) { return topk(in[0], 2, 1).values; }, {x}, 1e-6, 1e-5, 1e-4, "topk");
  gradcheck([](const auto& in) { return topk(in[0], 2, 0, false, false).values; }, {x}, 1e-6, 1e-5,
            1e-4, "topk smallest unsorted");
}

TEST(IndexGrad, SecondOrder) {
  // Squaring after the op makes the first gradient depend on x, so the backward ops'
  // own gradients (gather, index_select) are exercised.
  Tensor x = random_tensor({3, 4}, DType::Float64, -1, 1, 11);
  Tensor src = random_tensor({2, 4}, DType::Float64, -1, 1, 12);
  Tensor dup1 = random_index(4, {3, 5}, DType::Int64, 13);
  Tensor dup0 = random_index(3, {2, 4}, DType::Int64, 14);
  Tensor perm0 = argsort(random_tensor({3, 4}, DType::Float64, 0, 1, 15), 0).slice(0, 0, 2);
  Tensor rows = make_ints({2, 0, 2}, {3});
  Tensor mask = bernoulli({3, 4}, 0.5, DType::Bool);
  gradgradcheck([&](const auto& in) { return square(gather(in[0], 1, dup1)); }, {x}, 1e-6, 1e-4,
                1e-3, "gather");
  gradgradcheck([&](const auto& in) { return square(scatter_add(in[0], 0, dup0, in[1])); },
                {x, src}, 1e-6, 1e-4, 1e-3, "scatter_add");
  gradgradcheck([&](const auto& in) { return square(scatter(in[0], 0, perm0, in[1])); }, {x, src},
                1e-6, 1e-4, 1e-3, "scatter");
  gradgradcheck([&](const auto& in) { return square(index_select(in[0], 0, rows)); }, {x}, 1e-6,
                1e-4, 1e-3, "index_select");
  gradgradcheck([&](const auto& in) { return square(masked_select(in[0], mask)); }, {x}, 1e-6, 1e-4,
                1e-3, "masked_select");
  gradgradcheck([](const auto& in) { return square(sort(in[0], 1).values); }, {x}, 1e-6, 1e-4, 1e-3,
                "sort");
  gradgradcheck([](const auto& in) { return square(topk(in[0], 3, 1).values); }, {x}, 1e-6, 1e-4,
                1e-3, "topk");
}

TEST(IndexGrad, OnlyRequestedInputs) {
  Tensor x = random_tensor({3, 4}, DType::Float64, -1, 1, 21).set_requires_grad();
  Tensor src = random_tensor({2, 4}, DType::Float64, -1, 1, 22).set_requires_grad();
  Tensor index = random_index(3, {2, 4}, DType::Int64, 23);
  Tensor loss = sum(scatter_add(x, 0, index, src));
  TensorList g = grad({loss}, {src});
  expect_close(g[0], ones({2, 4}, DType::Float64));
  // Gradients of sort values ignore the (unused) indices output.
  Tensor y = random_tensor({5}, DType::Float64, -1, 1, 24).set_requires_grad();
  ValuesIndices s = sort(y);
  sum(mul(s.values, arange(0, 5).to(DType::Float64))).backward();
  std::vector<int64_t> order = s.indices.to_vector<int64_t>();
  std::vector<double> gy = y.grad().to_vector<double>();
  for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(gy[order[j]], static_cast<double>(j));
}

// ------------------------------------------------------------------ errors

TEST(IndexErrors, OutOfRange) {
  Tensor x = zeros({3, 4});
  expect_error(
      [&] {
        gather(x, 1, make_ints({0, 5, 1}, {3, 1}));
      },
      "gather: index 5 is out of range for axis 1 of size 4 (expected 0 to 3)");
  expect_error(
      [&] {
        gather(x, 0, make_ints({-1}, {1, 1}, DType::Int32));
      },
      "gather: index -1 is out of range for axis 0 of size 3");
  expect_error(
      [&] {
        gather(zeros({3, 0}), 1, zeros({3, 1}, DType::Int64));
      },
      "gather: index 0 is out of range for axis 1 of size 0 (the axis is empty)");
  expect_error(
      [&] {
        scatter(x, 0, make_ints({3}, {1, 1}), ones({1, 1}));
      },
      "scatter: index 3 is out of range for axis 0 of size 3");
  expect_error(
      [&] {
        scatter_add(x, -1, make_ints({-2}, {1, 1}), ones({1, 1}));
      },
      "scatter_add: index -2 is out of range for axis 1 of size 4");
  expect_error(
      [&] {
        index_select(x, 1, make_ints({0, 4}));
      },
      "index_select: index 4 is out of range for axis 1 of size 4");
  expect_error([&] { index_select(x, 0, make_ints({-1})); },
               "index_select: index -1 is out of range for axis 0 of size 3");
  expect_error([&] { take(x, make_ints({-5}), 1); },
               "take: index -5 is out of range for axis 1 of size 4 (expected -4 to 3)");
  expect_error([&] { take(x, make_ints({3}), 0); }, "take: index 3 is out of range for axis 0");
  expect_error(
      [&] {
        take_along_axis(x, make_ints({4}, {1, 1}), 1);
      },
      "take_along_axis: index 4 is out of range for axis 1 of size 4");
  expect_error(
      [&] {
        one_hot(make_ints({0, 3}), 3);
      },
      "one_hot: index 3 is out of range for the class axis of size 3");
  expect_error([&] { one_hot(make_ints({-1})); }, "one_hot: index -1 is out of range");
  expect_error([&] { topk(x, 5, 1); }, "topk: k = 5 is out of range for axis 1 of size 4");
  expect_error([&] { sort(x, 2); }, "sort: axis 2 is out of range");
  // The input of a failed scatter is unchanged.
  expect_close(x, zeros({3, 4}));
}

TEST(IndexErrors, WrongDtypes) {
  Tensor x = zeros({3, 4});
  expect_error(
      [&] {
        gather(x, 0, zeros({3, 4}));
      },
      "gather: index must be an int32 or int64 tensor, got float32");
  expect_error([&] { index_select(x, 0, zeros({2}, DType::Bool)); },
               "index_select: index must be an int32 or int64 tensor, got bool");
  expect_error([&] { take(x, zeros({2}, DType::UInt8), 0); },
               "take: indices must be an int32 or int64 tensor, got uint8");
  expect_error(
      [&] {
        scatter(x, 0, zeros({1, 4}, DType::Int64), zeros({1, 4}, DType::Float64));
      },
      "scatter: src has dtype float64, expected the input's dtype float32");
  expect_error([&] { one_hot(zeros({2}), 3); },
               "one_hot: indices must be an int32 or int64 tensor, got float32");
  expect_error(
      [&] {
        masked_fill(x, zeros({3, 4}), 1.0);
      },
      "masked_fill: mask must be a bool tensor, got float32");
  expect_error([&] { masked_select(x, zeros({4}, DType::Int64)); },
               "masked_select: mask must be a bool tensor, got int64");
  expect_error([&] { boolean_mask(x, zeros({3}, DType::Int32)); },
               "boolean_mask: mask must be a bool tensor, got int32");
}

TEST(IndexErrors, MismatchedShapes) {
  Tensor x = zeros({3, 4});
  Tensor i64 = zeros({2}, DType::Int64);
  expect_error([&] { gather(x, 0, i64); },
               "gather: index must have as many dimensions as the input: index shape [2], input "
               "shape [3,4]");
  expect_error(
      [&] {
        gather(x, 0, zeros({2, 5}, DType::Int64));
      },
      "gather: index shape [2,5] is larger than the input shape [3,4] in dimension 1");
  expect_error(
      [&] {
        scatter(x, 0, zeros({2, 4}, DType::Int64), zeros({1, 4}));
      },
      "scatter: index shape [2,4] is larger than the src shape [1,4] in dimension 0");
  expect_error(
      [&] {
        scatter_add(x, 1, zeros({4, 1}, DType::Int64), zeros({4, 1}));
      },
      "scatter_add: index shape [4,1] is larger than the input shape [3,4] in dimension 0");
  expect_error(
      [&] {
        index_select(x, 0, zeros({2, 1}, DType::Int64));
      },
      "index_select: index must be 0-d or 1-d, got shape [2,1]");
  expect_error([&] { index_select(scalar_tensor(1, DType::Float32), 0, i64); },
               "index_select: cannot index a 0-d tensor");
  expect_error(
      [&] {
        take_along_axis(x, zeros({2, 4}, DType::Int64), 1);
      },
      "take_along_axis: input shape [3,4] and indices shape [2,4] do not broadcast in "
      "dimension 0");
  expect_error([&] { take_along_axis(x, i64, 0); },
               "take_along_axis: indices must have as many dimensions as the input");
  expect_error([&] { masked_fill(x, zeros({3}, DType::Bool), 0); },
               "masked_fill: mask shape [3] does not broadcast to the input shape [3,4]");
  expect_error(
      [&] {
        masked_fill(x, zeros({3, 4}, DType::Bool), zeros({1}));
      },
      "masked_fill: value must be a 0-d tensor, got shape [1]");
  expect_error([&] { masked_select(x, zeros({3}, DType::Bool)); },
               "masked_select: shapes do not broadcast: [3,4] and [3]");
  expect_error([&] { boolean_mask(x, zeros({4}, DType::Bool)); },
               "boolean_mask: mask shape [4] does not match the leading dimensions of the input "
               "shape [3,4]");
  expect_error([&] { one_hot(zeros({0}, DType::Int64)); },
               "one_hot: cannot infer num_classes from an empty tensor");
}

}  // namespace
