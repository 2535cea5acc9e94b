// Tensor creation and random draws. Random values come from Philox counters, one
// counter per group of four values, so any thread split yields the same numbers.
#include "tessera/ops/creation.h"

#include <cmath>
#include <numbers>

#include "../kernels/cpu/copy.h"
#include "tessera/core/parallel.h"
#include "tessera/ops/op.h"

namespace tessera {

Tensor empty(const Shape& shape, DType dtype) { return Tensor::empty(shape, dtype); }

static void fill_with(Tensor& t, const Scalar& value) {
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = value.is_int() || value.is_bool() ? cpu::convert<T>(value.to_int())
                                            : cpu::convert<T>(value.to_double());
    T* p = static_cast<T*>(t.data_ptr());
    std::fill(p, p + t.numel(), v);
  });
}

// The op form of full(), which graphs record when the shape depends on an unknown
// dimension (zeros_like of a batch). The value is an int or a double attribute.
static MetaList infer_fill(const OpCall& c) {
  Dims shape(c.attrs.ints("shape"));
  for (int64_t d : shape) check(d >= 0, "fill", "negative dimension in shape ", shape);
  return {{shape, c.attrs.get<DType>("dtype")}};
}
static void cpu_fill(const OpCall& c, std::span<Tensor> out) {
  if (c.attrs.has("int_value")) {
    fill_with(out[0], Scalar(c.attrs.i("int_value")));
  } else {
    fill_with(out[0], Scalar(c.attrs.f("value")));
  }
}
constexpr OpDef kFill{"fill", infer_fill, cpu_fill, nullptr, nullptr, kSaveNothing};
const OpRegistrar fill_registrar(kFill);

Tensor full(const Shape& shape, const Scalar& value, DType dtype) {
  if (OpTracer* tracer = active_tracer(); tracer && tracer->has_unknown_dim(shape)) {
    Attrs attrs{{"shape", shape.vec()}, {"dtype", dtype}};
    if (value.is_int() || value.is_bool()) {
      attrs.set("int_value", value.to_int());
    } else {
      attrs.set("value", value.to_double());
    }
    return run_op1(kFill, {}, attrs);
  }
  Tensor t = Tensor::empty(shape, dtype);
  fill_with(t, value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, const Scalar& value) { return full(t.shape(), value, t.dtype()); }
Tensor scalar_tensor(const Scalar& value, DType dtype) { return full({}, value, dtype); }

Tensor arange(const Scalar& stop) { return arange(0, stop, 1); }

Tensor arange(const Scalar& start, const Scalar& stop, const Scalar& step) {
  bool integral = !(!start.is_int() || !stop.is_int() || !step.is_int());
  return arange(start, stop, step, integral ? DType::Int64 : DType::Float32);
}

Tensor arange(const Scalar& start, const Scalar& stop, const Scalar& step, DType dtype) {
  double a = start.to_double(), b = stop.to_double(), s = step.to_double();
  check(s != 0, "arange", "step must be nonzero");
  check(std::isfinite(a) && std::isfinite(b), "arange", "bounds must be finite");
  const double count = std::ceil((b - a) / s);
  // (Compared as a double first: the conversion of a count past int64 is undefined.)
  check(count < 9223372036854775807.0, "arange", "[", a, ", ", b, ") in steps of ", s,
        " has too many elements (", count, ")");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(count));
  Tensor t = Tensor::empty({n}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.data_ptr());
    if (start.is_int() && step.is_int()) {
      for (int64_t i = 0; i < n; ++i) p[i] = cpu::convert<T>(start.to_int() + i * step.to_int());
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = cpu::convert<T>(a + static_cast<double>(i) * s);
    }
  });
  return t;
}

Tensor linspace(double start, double stop, int64_t steps, DType dtype) {
  check(steps >= 0, "linspace", "number of steps must be non-negative, got ", steps);
  Tensor t = Tensor::empty({steps}, dtype);
  double step = steps > 1 ? (stop - start) / static_cast<double>(steps - 1) : 0.0;
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.data_ptr());
    // Symmetric from both ends, like PyTorch, so the last value is exactly `stop`.
    for (int64_t i = 0; i < steps; ++i) {
      double v = i < steps / 2 ? start + step * static_cast<double>(i)
                               : stop - step * static_cast<double>(steps - 1 - i);
      p[i] = cpu::convert<T>(v);
    }
  });
  return t;
}

Tensor eye(int64_t n, int64_t m, DType dtype) {
  check(m >= -1, "eye", "column count must be non-negative (or -1 for n), got ", m);
  if (m == -1) m = n;
  check(n >= 0, "eye", "size must be non-negative, got ", n);
  Tensor t = zeros({n, m}, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.data_ptr());
    for (int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = cpu::convert<T>(1);
  });
  return t;
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  check(shape_numel(s) == static_cast<int64_t>(values.size()), "from_vector", "shape ", s,
        " holds ", shape_numel(s), " values, got ", values.size());
  Tensor t = Tensor::empty(s, dtype_of<T>());
  std::copy(values.begin(), values.end(), static_cast<T*>(t.data_ptr()));
  return t;
}
template Tensor from_vector(const std::vector<float>&, const Shape&);
template Tensor from_vector(const std::vector<double>&, const Shape&);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor from_vector(const std::vector<int8_t>&, const Shape&);
template Tensor from_vector(const std::vector<float16>&, const Shape&);
template Tensor from_vector(const std::vector<bfloat16>&, const Shape&);
template <>
Tensor from_vector(const std::vector<bool>& values, const Shape& shape) {
  std::vector<uint8_t> bytes(values.begin(), values.end());
  Tensor t = from_vector(bytes, shape);
  Tensor b = Tensor::empty(t.shape(), DType::Bool);
  cpu::copy_into(t, b);
  return b;
}

static Tensor from_doubles(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  cpu::copy_into(from_vector(values, shape), t);
  return t;
}

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return from_doubles(std::vector<double>(values), {static_cast<int64_t>(values.size())}, dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> values, DType dtype) {
  std::vector<double> flat;
  int64_t cols = values.size() ? static_cast<int64_t>(values.begin()->size()) : 0;
  for (const auto& row : values) {
    check(static_cast<int64_t>(row.size()) == cols, "tensor", "ragged nested list: rows of ", cols,
          " and ", row.size(), " values");
    flat.insert(flat.end(), row.begin(), row.end());
  }
  return from_doubles(flat, {static_cast<int64_t>(values.size()), cols}, dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> values,
              DType dtype) {
  std::vector<double> flat;
  int64_t rows = values.size() ? static_cast<int64_t>(values.begin()->size()) : 0;
  int64_t cols = rows ? static_cast<int64_t>(values.begin()->begin()->size()) : 0;
  for (const auto& plane : values) {
    check(static_cast<int64_t>(plane.size()) == rows, "tensor", "ragged nested list");
    for (const auto& row : plane) {
      check(static_cast<int64_t>(row.size()) == cols, "tensor", "ragged nested list");
      flat.insert(flat.end(), row.begin(), row.end());
    }
  }
  return from_doubles(flat, {static_cast<int64_t>(values.size()), rows, cols}, dtype);
}

// ---------------------------------------------------------------- random draws

namespace {

Generator& gen_or_default(Generator* gen) { return gen ? *gen : default_generator(); }

// Fills n values: value i = sample(words of counter (start + i / 4), lane i % 4).
template <typename Value = double, typename Sample>
std::vector<Value> draw(Generator& gen, int64_t n, Sample sample) {
  // Draws with a graph op never get here while tracing; others would be frozen into the
  // graph as constants and repeat every call.
  check(active_tracer() == nullptr, "random",
        "this random draw (a permutation) has no graph op yet (a traced graph would repeat "
        "the same numbers on every call); draw outside and pass it as an input");
  std::vector<Value> out(n);
  uint64_t start = gen.advance(static_cast<uint64_t>((n + 1) / 2 + 1));
  uint64_t key = gen.seed();
  // Each value uses two 32-bit words, two values per counter.
  parallel_for(0, (n + 1) / 2, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      auto w = philox4x32(key, 0, start + static_cast<uint64_t>(c));
      for (int64_t k = 0; k < 2 && 2 * c + k < n; ++k) {
        out[2 * c + k] = sample(w[2 * k], w[2 * k + 1], key, start + c, k);
      }
    }
  });
  return out;
}

Tensor to_tensor(const std::vector<double>& values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  cpu::copy_into(from_vector(values, {static_cast<int64_t>(values.size())}).reshape(shape), t);
  return t;
}

double normal_from(uint32_t a, uint32_t b) {
  // Box-Muller from one 64-bit draw split into two 26-bit uniforms.
  double u1 = (static_cast<double>(a >> 6) + 0.5) * 0x1.0p-26;
  double u2 = (static_cast<double>(b >> 6) + 0.5) * 0x1.0p-26;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void check_float(DType dtype, const char* op) {
  check(is_floating(dtype), op, "needs a floating dtype, got ", dtype_name(dtype));
}

// While tracing, a draw becomes a `random` op: each run of the graph draws afresh from the
// default generator with the sampling code of eager calls (so a graph and eager code
// seeded alike draw the same numbers in the same order).
MetaList infer_random(const OpCall& c) {
  Dims shape(c.attrs.ints("shape"));
  for (int64_t d : shape) check(d >= 0, "random", "negative dimension in shape ", shape);
  return {{shape, c.attrs.get<DType>("dtype")}};
}

void cpu_random(const OpCall& c, std::span<Tensor> out) {
  TracerScope untraced(nullptr);
  const std::string& kind = c.attrs.get<std::string>("distribution");
  const Shape& shape = out[0].shape();
  const DType dtype = out[0].dtype();
  Tensor t;
  if (kind == "uniform") {
    t = uniform(shape, c.attrs.f("a"), c.attrs.f("b"), dtype);
  } else if (kind == "normal") {
    t = normal(shape, c.attrs.f("a"), c.attrs.f("b"), dtype);
  } else if (kind == "truncated_normal") {
    t = truncated_normal(shape, c.attrs.f("a"), c.attrs.f("b"), c.attrs.f("low"), c.attrs.f("high"),
                         dtype);
  } else if (kind == "bernoulli") {
    t = bernoulli(shape, c.attrs.f("a"), dtype);
  } else if (kind == "randint") {
    t = randint(c.attrs.i("low"), c.attrs.i("high"), shape, dtype);
  } else {
    fail("random", "unknown distribution '", kind, "'");
  }
  out[0].copy_(t);
}

const OpDef kRandom{.name = "random",
                    .infer = infer_random,
                    .cpu = cpu_random,
                    .saves = kSaveNothing,
                    .draws_random = true};
const OpRegistrar register_random(kRandom);

Tensor traced_draw(Attrs attrs, const Shape& shape, DType dtype, Generator* gen) {
  check(gen == nullptr || gen == &default_generator(), "random",
        "inside tessera::function, draws come from the default generator (seeded by "
        "manual_seed): pass no generator");
  attrs.set("shape", shape.vec());
  attrs.set("dtype", dtype);
  return run_op1(kRandom, {}, attrs);
}

}  // namespace

Tensor rand(const Shape& shape, DType dtype, Generator* gen) {
  return uniform(shape, 0.0, 1.0, dtype, gen);
}

Tensor uniform(const Shape& shape, double low, double high, DType dtype, Generator* gen) {
  check_float(dtype, "uniform");
  check(low <= high, "uniform", "low (", low, ") must not exceed high (", high, ")");
  if (active_tracer())
    return traced_draw({{"distribution", std::string("uniform")}, {"a", low}, {"b", high}}, shape,
                       dtype, gen);
  auto v = draw(gen_or_default(gen), shape_numel(shape),
                [&](uint32_t a, uint32_t b, uint64_t, uint64_t, int64_t) {
                  return low + (high - low) * uint_to_unit_double(a, b);
                });
  return to_tensor(v, shape, dtype);
}

Tensor randn(const Shape& shape, DType dtype, Generator* gen) {
  return normal(shape, 0.0, 1.0, dtype, gen);
}

Tensor normal(const Shape& shape, double mean, double stddev, DType dtype, Generator* gen) {
  check_float(dtype, "normal");
  check(stddev >= 0, "normal", "stddev must be non-negative, got ", stddev);
  if (active_tracer())
    return traced_draw({{"distribution", std::string("normal")}, {"a", mean}, {"b", stddev}}, shape,
                       dtype, gen);
  auto v = draw(gen_or_default(gen), shape_numel(shape),
                [&](uint32_t a, uint32_t b, uint64_t, uint64_t, int64_t) {
                  return mean + stddev * normal_from(a, b);
                });
  return to_tensor(v, shape, dtype);
}

Tensor truncated_normal(const Shape& shape, double mean, double stddev, double a, double b,
                        DType dtype, Generator* gen) {
  check_float(dtype, "truncated_normal");
  check(a < b, "truncated_normal", "bounds must satisfy a < b, got ", a, " and ", b);
  if (active_tracer()) {
    return traced_draw({{"distribution", std::string("truncated_normal")},
                        {"a", mean},
                        {"b", stddev},
                        {"low", a},
                        {"high", b}},
                       shape, dtype, gen);
  }
  // Rejection: redraw from further counters of the same element until inside the bounds.
  auto v = draw(gen_or_default(gen), shape_numel(shape),
                [&](uint32_t w0, uint32_t w1, uint64_t key, uint64_t counter, int64_t lane) {
                  double z = normal_from(w0, w1);
                  for (uint64_t round = 1; (z < a || z > b) && round < 1000; ++round) {
                    auto w = philox4x32(key, round, counter);
                    z = normal_from(w[2 * lane], w[2 * lane + 1]);
                  }
                  z = std::min(std::max(z, a), b);
                  return mean + stddev * z;
                });
  return to_tensor(v, shape, dtype);
}

Tensor bernoulli(const Shape& shape, double p, DType dtype, Generator* gen) {
  check(p >= 0 && p <= 1, "bernoulli", "probability must be in [0, 1], got ", p);
  if (active_tracer())
    return traced_draw({{"distribution", std::string("bernoulli")}, {"a", p}}, shape, dtype, gen);
  auto v = draw(gen_or_default(gen), shape_numel(shape),
                [&](uint32_t a, uint32_t b, uint64_t, uint64_t, int64_t) {
                  return uint_to_unit_double(a, b) < p ? 1.0 : 0.0;
                });
  return to_tensor(v, shape, dtype);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Generator* gen) {
  check(low < high, "randint", "low (", low, ") must be less than high (", high, ")");
  if (active_tracer())
    return traced_draw({{"distribution", std::string("randint")}, {"low", low}, {"high", high}},
                       shape, dtype, gen);
  // In unsigned arithmetic: high - low overflows int64 for the widest ranges.
  uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  // Drawn as int64 (not through double, which is exact only to 2^53).
  std::vector<int64_t> ints =
      draw<int64_t>(gen_or_default(gen), shape_numel(shape),
                    [&](uint32_t a, uint32_t b, uint64_t, uint64_t, int64_t) {
                      uint64_t r = static_cast<uint64_t>(a) << 32 | b;
                      return static_cast<int64_t>(static_cast<uint64_t>(low) + r % range);
                    });
  Tensor t = Tensor::empty(shape, dtype);
  cpu::copy_into(from_vector(ints, {static_cast<int64_t>(ints.size())}).reshape(shape), t);
  return t;
}

Tensor randperm(int64_t n, DType dtype, Generator* gen) {
  check(n >= 0, "randperm", "n must be non-negative, got ", n);
  // Fisher-Yates driven by one draw of n uniforms.
  auto u = draw(gen_or_default(gen), n, [](uint32_t a, uint32_t b, uint64_t, uint64_t, int64_t) {
    return uint_to_unit_double(a, b);
  });
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(u[i] * static_cast<double>(i + 1));
    std::swap(perm[i], perm[std::min(j, i)]);
  }
  Tensor t = Tensor::empty({n}, dtype);
  cpu::copy_into(from_vector(perm, {n}), t);
  return t;
}

}  // namespace tessera
