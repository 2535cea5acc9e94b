// Shape ops: concat/stack/split/chunk/tile/repeat/flip/roll/tril/triu/meshgrid
// against references, and gradients through views and copies.
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

TEST(Shape, ConcatStackSplit) {
  Tensor a = arange(0, 6).reshape({2, 3}), b = arange(6, 12).reshape({2, 3});
  EXPECT_EQ(concat({a, b}, 0).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(concat({a, b}, 1).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11}));
  EXPECT_EQ(concat({a, a.to(DType::Float32)}, 0).dtype(), DType::Float32);
  EXPECT_EQ(concat({a, zeros({0, 3}, DType::Int64)}, 0).shape(), Shape({2, 3}));
  EXPECT_EQ(stack({a, b}, 1).shape(), Shape({2, 2, 3}));
  EXPECT_EQ(stack({a, b}, 2).to_vector<int64_t>()[1], 6);
  auto parts = split(arange(0, 7), 3);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].to_vector<int64_t>(), (std::vector<int64_t>{6}));
  auto sized = split(arange(0, 7), {2, 5}, 0);
  EXPECT_EQ(sized[1].numel(), 5);
  expect_error([] { split(arange(0, 7), {2, 4}, 0); }, "split: sizes add up to 6");
  EXPECT_EQ(chunk(arange(0, 10), 3).size(), 3u);
  EXPECT_EQ(chunk(arange(0, 10), 3)[0].numel(), 4);
}

TEST(Shape, TileRepeatFlipRoll) {
  Tensor a = arange(0, 4).reshape({2, 2});
  EXPECT_EQ(tile(a, {1, 2}).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1, 2, 3, 2, 3}));
  EXPECT_EQ(tile(a, {2, 1, 1}).shape(), Shape({2, 2, 2}));
  EXPECT_EQ(repeat_interleave(a, 2, 0).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 0, 1, 2, 3, 2, 3}));
  EXPECT_EQ(repeat_interleave(a, 2, 1).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(flip(a, {0}).to_vector<int64_t>(), (std::vector<int64_t>{2, 3, 0, 1}));
  EXPECT_EQ(flip(a, {0, 1}).to_vector<int64_t>(), (std::vector<int64_t>{3, 2, 1, 0}));
  EXPECT_EQ(flip(a.t(), {1}).to_vector<int64_t>(), (std::vector<int64_t>{2, 0, 3, 1}));
  EXPECT_EQ(roll(arange(0, 5), 2, 0).to_vector<int64_t>(), (std::vector<int64_t>{3, 4, 0, 1, 2}));
  EXPECT_EQ(roll(arange(0, 5), -1, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4, 0}));
  EXPECT_EQ(flip(zeros({0, 2}), {0}).numel(), 0);
}

TEST(Shape, TriangularAndMeshgrid) {
  Tensor m = ones({3, 3});
  EXPECT_EQ(tril(m).to_vector<float>(), (std::vector<float>{1, 0, 0, 1, 1, 0, 1, 1, 1}));
  EXPECT_EQ(triu(m, 1).to_vector<float>(), (std::vector<float>{0, 1, 1, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(tril(ones({2, 2, 3}), -1).to_vector<float>()[3], 1.0f);
  auto g = meshgrid({arange(0, 2), arange(0, 3)});
  EXPECT_EQ(g[0].shape(), Shape({2, 3}));
  EXPECT_EQ(g[1].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  auto xy = meshgrid({arange(0, 2), arange(0, 3)}, false);
  EXPECT_EQ(xy[0].shape(), Shape({3, 2}));
  EXPECT_EQ(xy[0].to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1, 0, 1}));
}

TEST(Shape, GradientsThroughViewsAndCopies) {
  Tensor x = random_tensor({3, 4}, DType::Float64, -1, 1, 3);
  Tensor y = random_tensor({3, 2}, DType::Float64, -1, 1, 4);
  gradcheck([](const auto& in) { return in[0].reshape({4, 3}); }, {x});
  gradcheck([](const auto& in) { return in[0].t(); }, {x});
  gradcheck([](const auto& in) { return in[0].slice(1, 0, 4, 2); }, {x});
  gradcheck([](const auto& in) { return in[0].select(0, 1); }, {x});
  gradcheck([](const auto& in) { return in[0].unsqueeze(1).expand({3, 5, 4}); }, {x});
  gradcheck([](const auto& in) { return in[0].diagonal(1); }, {x});
  gradcheck([](const auto& in) { return in[0].t().contiguous(); }, {x});
  gradcheck([](const auto& in) { return concat({in[0], in[1]}, 1); }, {x, y});
  gradcheck([](const auto& in) { return stack({in[0], in[0]}, 0); }, {x});
  gradcheck([](const auto& in) { return split(in[0], 3, 1)[1]; }, {x});
  gradcheck([](const auto& in) { return tile(in[0], {2, 1}); }, {x});
  gradcheck([](const auto& in) { return repeat_interleave(in[0], 3, 1); }, {x});
  gradcheck([](const auto& in) { return flip(in[0], {0, 1}); }, {x});
  gradcheck([](const auto& in) { return roll(in[0], 1, 1); }, {x});
  gradcheck([](const auto& in) { return tril(in[0]); }, {x});
  gradcheck([](const auto& in) { return in[0].squeeze(); }, {random_tensor({1, 3, 1})});
  gradgradcheck([](const auto& in) { return mul(in[0].slice(0, 1, 3), in[0].slice(0, 0, 2)); },
                {x});
  gradgradcheck([](const auto& in) { return square(in[0].diagonal()); }, {x});
}
