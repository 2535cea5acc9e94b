// Eager autodiff: backward and grad(), accumulation, retain/create_graph, no_grad,
// detach, unused inputs, in-place and version errors, gradients asked only where needed.
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

TEST(Autodiff, BackwardAccumulatesIntoGrad) {
  Tensor x = tensor({1, 2, 3}).set_requires_grad();
  Tensor y = sum(mul(x, x));
  y.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 4, 6}));
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

// The hook data-parallel training starts exchanging from: it runs once per backward, after
// the leaf's .grad is complete, and not for grad().
TEST(Autodiff, GradientAccumulatedHookSeesTheFinishedGrad) {
  Tensor w = tensor({1, 2}).set_requires_grad();
  std::vector<std::vector<float>> seen;
  auto keep =
      autodiff::on_gradient_accumulated(w, [&] { seen.push_back(w.grad().to_vector<float>()); });
  // w is used twice: the hook sees the sum of both paths, once.
  sum(add(mul(w, w), mul(w, 3.0))).backward();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (std::vector<float>{5, 7}));
  sum(w).backward();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], (std::vector<float>{6, 8}));
  tessera::grad({sum(w)}, {w});
  EXPECT_EQ(seen.size(), 2u);
  keep->post_hooks.clear();
  sum(w).backward();
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_THROW(autodiff::on_gradient_accumulated(mul(w, 2.0), [] {}), Error);
  EXPECT_THROW(autodiff::on_gradient_accumulated(tensor({1}), [] {}), Error);
}

TEST(Autodiff, BackwardWithOutputGradient) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor y = mul(x, 2.0);
  y.backward(tensor({10, 100}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{20, 200}));
  Tensor z = mul(x, 2.0);
  expect_error([&] { z.backward(); },
               "backward: a gradient can be created implicitly only for scalar");
  expect_error([&] { z.backward(tensor({1, 2, 3})); }, "backward: output gradient 0 has shape [3]");
}

TEST(Autodiff, GradDoesNotTouchDotGrad) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor w = tensor({3, 4}).set_requires_grad();
  Tensor y = sum(mul(x, w));
  TensorList g = grad({y}, {x});
  EXPECT_EQ(g[0].to_vector<float>(), (std::vector<float>{3, 4}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Autodiff, GradOfIntermediateAndUnused) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor h = mul(x, 3.0);
  Tensor y = sum(square(h));
  TensorList g = grad({y}, {h}, {}, true);
  EXPECT_EQ(g[0].to_vector<float>(), (std::vector<float>{6, 12}));
  Tensor unused = tensor({1}).set_requires_grad();
  expect_error([&] { grad({y}, {unused}, {}, true); }, "grad: input 0 was not used");
  TensorList u = grad({y}, {unused, x}, {}, true, false, true);
  EXPECT_FALSE(u[0].defined());
  EXPECT_EQ(u[1].to_vector<float>(), (std::vector<float>{18, 36}));
}

TEST(Autodiff, SecondBackwardNeedsRetainGraph) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), true);
  y.backward();
  EXPECT_NEAR(x.grad().to_vector<float>()[0], 2 * std::exp(1.0f), 1e-5);
  expect_error([&] { y.backward(); }, "trying to backward through the graph a second time");
}

TEST(Autodiff, CreateGraphGivesSecondDerivatives) {
  Tensor x = tensor({0.5, 1.5}, DType::Float64).set_requires_grad();
  Tensor y = sum(mul(pow(x, 3.0), 1.0));
  Tensor dy = grad({y}, {x}, {}, true, true)[0];  // 3x^2
  EXPECT_TRUE(dy.requires_grad());
  Tensor d2 = grad({sum(dy)}, {x})[0];  // 6x
  EXPECT_NEAR(d2.to_vector<double>()[0], 3.0, 1e-12);
  EXPECT_NEAR(d2.to_vector<double>()[1], 9.0, 1e-12);
  // Through an op that saves its output (exp).
  Tensor e = sum(exp(x));
  Tensor de = grad({e}, {x}, {}, true, true)[0];
  Tensor d2e = grad({sum(de)}, {x})[0];
  EXPECT_NEAR(d2e.to_vector<double>()[1], std::exp(1.5), 1e-12);
  // backward(create_graph) leaves a differentiable .grad.
  Tensor z = sum(square(square(x)));
  z.backward(Tensor(), false, true);
  Tensor g4 = grad({sum(x.grad())}, {x})[0];  // d/dx 4x^3 = 12x^2
  EXPECT_NEAR(g4.to_vector<double>()[0], 3.0, 1e-12);
  x.zero_grad();  // a graph-carrying .grad refers back to x: clear it, as in PyTorch
}

TEST(Autodiff, NoGradAndDetach) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  {
    NoGradGuard guard;
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_FALSE(grad_enabled());
  }
  EXPECT_TRUE(grad_enabled());
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.storage(), x.storage());
  Tensor y = add(mul(d, x), 0.0);
  y.backward(ones({2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{1, 2}));
  Tensor n = mul(tensor({1}), 2.0);
  expect_error([&] { n.backward(); }, "does not require grad");
}

TEST(Autodiff, IntegerAndBoolOutputsCarryNoGradient) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  EXPECT_FALSE(gt(x, zeros({})).requires_grad());
  EXPECT_FALSE(argmax(x).requires_grad());
  EXPECT_TRUE(cast(x, DType::Float64).requires_grad());
}

TEST(Autodiff, InPlaceModificationOfSavedTensorIsAnError) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor h = mul(x, 1.0);
  Tensor hv = h.detach();
  Tensor y = sum(mul(h, h));  // saves h
  {
    NoGradGuard guard;
    hv.add_(ones({2}));  // modifies h's storage behind autodiff's back
  }
  expect_error([&] { y.backward(); },
               "mul: a tensor saved for the gradient was modified by an in-place op");
}

TEST(Autodiff, ViewsGetGradients) {
  Tensor x = arange(0, 6, 1, DType::Float64).reshape({2, 3}).detach().set_requires_grad();
  Tensor y = sum(mul(x.t().slice(0, 1, 3), 2.0));
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 2, 2, 0, 2, 2}));
}

TEST(Autodiff, DiamondGraphSumsBranches) {
  Tensor x = tensor({2}, DType::Float64).set_requires_grad();
  Tensor a = mul(x, 3.0), b = square(x);
  Tensor y = sum(mul(a, b));  // 3x^3 -> 9x^2 = 36
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item<double>(), 36.0);
}

TEST(Autodiff, LongChainDoesNotOverflowTheStack) {
  Tensor x = tensor({1}, DType::Float64).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = mul(y, 1.0);
  sum(y).backward();
  EXPECT_DOUBLE_EQ(x.grad().item<double>(), 1.0);
}

TEST(Autodiff, MultipleOutputsAndRoots) {
  Tensor x = tensor({1, 2}).set_requires_grad();
  Tensor a = sum(x), b = sum(mul(x, x));
  backward({a, b});
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, 5}));
}

TEST(Autodiff, CreateGraphGradIsNotSharedBetweenLeaves) {
  // add's gradient is the same tensor for both inputs, and sum's is a broadcast view:
  // each leaf's .grad must still be its own storage that later backwards add into.
  Tensor x = tensor({1, 2, 3}).set_requires_grad();
  Tensor y = tensor({4, 5, 6}).set_requires_grad();
  sum(add(x, y)).backward(Tensor(), false, true);
  EXPECT_NE(x.grad().storage(), y.grad().storage());
  sum(mul(x, tensor({10, 20, 30}))).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{11, 21, 31}));
  EXPECT_EQ(y.grad().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  x.zero_grad();
  y.zero_grad();
}
