// Random draws: reproducible from a seed, independent of the thread count,
// with the right moments and ranges.
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

TEST(Random, SameSeedSameNumbersAnyThreadCount) {
  int saved = num_threads();
  set_num_threads(1);
  Generator g1(42);
  std::vector<float> one = randn({100000}, DType::Float32, &g1).to_vector<float>();
  set_num_threads(2);
  Generator g2(42);
  std::vector<float> two = randn({100000}, DType::Float32, &g2).to_vector<float>();
  set_num_threads(saved);
  EXPECT_EQ(one, two);
  Generator g3(43);
  EXPECT_NE(randn({100}, DType::Float32, &g3).to_vector<float>(),
            std::vector<float>(one.begin(), one.begin() + 100));
}

TEST(Random, GlobalSeed) {
  manual_seed(7);
  std::vector<float> a = rand({10}).to_vector<float>();
  std::vector<float> b = rand({10}).to_vector<float>();
  manual_seed(7);
  EXPECT_EQ(rand({10}).to_vector<float>(), a);
  EXPECT_NE(a, b);
}

TEST(Random, Moments) {
  Generator g(1);
  Tensor n = normal({200000}, 2.0, 3.0, DType::Float64, &g);
  EXPECT_NEAR(mean(n).item<double>(), 2.0, 0.03);
  EXPECT_NEAR(stddev(n).item<double>(), 3.0, 0.03);
  Tensor u = uniform({200000}, -1, 3, DType::Float64, &g);
  EXPECT_NEAR(mean(u).item<double>(), 1.0, 0.02);
  EXPECT_GE(amin(u).item<double>(), -1.0);
  EXPECT_LT(amax(u).item<double>(), 3.0);
  Tensor t = truncated_normal({100000}, 0, 1, -2, 2, DType::Float64, &g);
  EXPECT_GE(amin(t).item<double>(), -2.0);
  EXPECT_LE(amax(t).item<double>(), 2.0);
  EXPECT_NEAR(stddev(t).item<double>(), 0.8796, 0.01);  // std of N(0,1) truncated to [-2, 2]
  Tensor b = bernoulli({100000}, 0.3, DType::Float32, &g);
  EXPECT_NEAR(mean(b).item<double>(), 0.3, 0.01);
  Tensor r = randint(-3, 5, {100000}, DType::Int64, &g);
  EXPECT_EQ(amin(r).item<int64_t>(), -3);
  EXPECT_EQ(amax(r).item<int64_t>(), 4);
}

TEST(Random, PermutationIsAPermutation) {
  Generator g(5);
  std::vector<int64_t> p = randperm(1000, DType::Int64, &g).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(p, sorted);
}

TEST(Random, BadArguments) {
  expect_error([] { uniform({2}, 1, 0); }, "uniform: low (1) must not exceed high (0)");
  expect_error([] { randint(3, 3, {2}); }, "randint: low (3) must be less than high (3)");
  expect_error([] { bernoulli({2}, 1.5); }, "bernoulli: probability must be in [0, 1]");
  expect_error([] { randn({2}, DType::Int32); }, "normal: needs a floating dtype");
}
