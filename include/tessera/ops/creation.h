// Tensor creation: constants, ranges, identity, from C++ data, and random draws.
#pragma once
#include <initializer_list>
#include <vector>

#include "tessera/core/random.h"
#include "tessera/core/tensor.h"

namespace tessera {

Tensor empty(const Shape& shape, DType dtype = DType::Float32);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32);
Tensor ones(const Shape& shape, DType dtype = DType::Float32);
Tensor full(const Shape& shape, const Scalar& value, DType dtype = DType::Float32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, const Scalar& value);
// A 0-d tensor holding one value.
Tensor scalar_tensor(const Scalar& value, DType dtype);

// [start, stop) in steps; the dtype is int64 unless a bound or step is fractional.
Tensor arange(const Scalar& stop);
Tensor arange(const Scalar& start, const Scalar& stop, const Scalar& step = 1);
Tensor arange(const Scalar& start, const Scalar& stop, const Scalar& step, DType dtype);
Tensor linspace(double start, double stop, int64_t steps, DType dtype = DType::Float32);
Tensor eye(int64_t n, int64_t m = -1, DType dtype = DType::Float32);

// From C++ values (copied), with an optional shape (defaults to 1-d).
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {});
// Nested initializer lists: tensor({{1, 2}, {3, 4}}).
Tensor tensor(std::initializer_list<double> values, DType dtype = DType::Float32);
Tensor tensor(std::initializer_list<std::initializer_list<double>> values,
              DType dtype = DType::Float32);
Tensor tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> values,
              DType dtype = DType::Float32);

// Random draws; each reserves counters from the generator (the default one when null).
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double low, double high, DType dtype = DType::Float32,
               Generator* gen = nullptr);
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double stddev, DType dtype = DType::Float32,
              Generator* gen = nullptr);
// Normal values redrawn until inside [mean + a*stddev, mean + b*stddev] (default +-2).
Tensor truncated_normal(const Shape& shape, double mean = 0.0, double stddev = 1.0, double a = -2.0,
                        double b = 2.0, DType dtype = DType::Float32, Generator* gen = nullptr);
Tensor bernoulli(const Shape& shape, double p, DType dtype = DType::Float32,
                 Generator* gen = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Int64,
               Generator* gen = nullptr);
Tensor randperm(int64_t n, DType dtype = DType::Int64, Generator* gen = nullptr);

}  // namespace tessera
