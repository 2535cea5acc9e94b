// Layers, losses, optimizers and schedules against PyTorch's numbers on the same inputs
// (tests/golden/nn_golden.safetensors, made by tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include <map>

#include "tessera/io/safetensors.h"
#include "tessera/nn/nn.h"
#include "test_util.h"

namespace tessera::nn {
namespace {

using testing::expect_close;

const std::map<std::string, Tensor>& golden() {
  static const std::map<std::string, Tensor> entries = [] {
    std::map<std::string, Tensor> m;
    auto contents =
        io::load_safetensors(std::string(TESSERA_TEST_DIR) + "/golden/nn_golden.safetensors");
    for (auto& [name, t] : contents.tensors) m[name] = t;
    return m;
  }();
  return entries;
}

Tensor g(const std::string& name) {
  auto it = golden().find(name);
  if (it == golden().end()) throw std::runtime_error("no golden entry " + name);
  return it->second;
}
bool has(const std::string& name) { return golden().count(name) > 0; }

// Loads the case's parameters and buffers, runs forward on x0 (and x1), backpropagates
// gy, and compares output, input and parameter gradients and updated buffers.
void check_layer(const std::string& c, Module& m, double rtol = 1e-5, double atol = 1e-6) {
  SCOPED_TRACE(c);
  NamedTensors state;
  for (auto& [name, t] : m.named_parameters()) state.emplace_back(name, g(c + ".param." + name));
  for (auto& [name, t] : m.named_buffers())
    state.emplace_back(name, g(c + ".buffer_before." + name));
  m.load_state_dict(state);
  Tensor x0 = g(c + ".x0").clone();
  if (is_floating(x0.dtype())) x0.set_requires_grad();
  Tensor y;
  Tensor x1;
  if (has(c + ".x1")) {
    x1 = g(c + ".x1").clone().set_requires_grad();
    y = dynamic_cast<Bilinear&>(m).forward(x0, x1);
  } else {
    y = m(x0);
  }
  expect_close(y, g(c + ".y"), rtol, atol, "output");
  y.backward(g(c + ".gy"));
  if (has(c + ".gx0")) expect_close(x0.grad(), g(c + ".gx0"), rtol, atol, "input gradient");
  if (has(c + ".gx1")) expect_close(x1.grad(), g(c + ".gx1"), rtol, atol, "input 1 gradient");
  for (auto& [name, t] : m.named_parameters())
    expect_close(t.grad(), g(c + ".grad." + name), rtol, atol, "gradient of " + name);
  for (auto& [name, t] : m.named_buffers())
    expect_close(t, g(c + ".buffer_after." + name), rtol, atol, "buffer " + name);
}

// Convolution weight gradients sum many products in a different order than PyTorch's
// kernels, so they get an absolute slack of a few float32 ulps of their terms.
constexpr double kConvAtol = 5e-6;

TEST(NnGolden, DenseAndConvLayers) {
  Linear linear(4, 5);
  check_layer("linear", linear);
  Bilinear bilinear(3, 4, 2);
  check_layer("bilinear", bilinear);
  Conv1d conv1d(3, 4, 3, {.stride = 2, .padding = 1});
  check_layer("conv1d", conv1d, 1e-5, kConvAtol);
  Conv2d conv2d(3, 4, 3, {.padding = 1});
  check_layer("conv2d", conv2d, 1e-5, kConvAtol);
  Conv2d strided(4, 6, {3, 2}, {.stride = 2, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2});
  check_layer("conv2d_strided", strided, 1e-5, kConvAtol);
  Conv3d conv3d(2, 3, 2, {.padding = 1});
  check_layer("conv3d", conv3d, 1e-5, kConvAtol);
  DepthwiseConv2d depthwise(3, 3, 2, {.padding = 1, .bias = false});
  check_layer("depthwise", depthwise, 1e-5, kConvAtol);
  ConvTranspose1d ct1(3, 2, 3, {.stride = 2, .padding = 1, .output_padding = 1});
  check_layer("conv_transpose1d", ct1, 1e-5, kConvAtol);
  ConvTranspose2d ct2(2, 4, 3, {.stride = 2, .padding = 1});
  check_layer("conv_transpose2d", ct2, 1e-5, kConvAtol);
}

TEST(NnGolden, PoolingLayers) {
  MaxPool1d mp1(3, {.stride = 2, .padding = 1});
  check_layer("maxpool1d", mp1);
  MaxPool2d mp2(2);
  check_layer("maxpool2d", mp2);
  AvgPool2d ap2(3, {.stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
  check_layer("avgpool2d", ap2);
  AvgPool1d ap1(2);
  check_layer("avgpool1d", ap1);
  AdaptiveAvgPool2d aap2({3, 2});
  check_layer("adaptive_avg2d", aap2);
  AdaptiveAvgPool1d aap1(4);
  check_layer("adaptive_avg1d", aap1);
}

TEST(NnGolden, NormalizationLayers) {
  BatchNorm2d bn2(3, {.momentum = 0.2});
  check_layer("batchnorm2d_train", bn2, 1e-5, 1e-5);
  BatchNorm1d bn1(5);
  bn1.eval();
  check_layer("batchnorm1d_eval", bn1);
  BatchNorm1d bn3(3);
  check_layer("batchnorm1d_train3d", bn3, 1e-5, 1e-5);
  LayerNorm ln({4, 3});
  check_layer("layernorm", ln, 1e-5, 1e-5);
  GroupNorm gn(2, 4);
  check_layer("groupnorm", gn, 1e-5, 1e-5);
  InstanceNorm in(3);
  check_layer("instancenorm", in, 1e-5, 1e-5);
}

TEST(NnGolden, OtherLayers) {
  Embedding emb(7, 3, 2);
  check_layer("embedding", emb);
  Upsample up(2.0, "bilinear");
  check_layer("upsample_bilinear", up);
  ZeroPad2d zp({1, 2, 0, 1});
  check_layer("zeropad2d", zp);
}

TEST(NnGolden, Activations) {
  std::vector<std::pair<std::string, ModulePtr>> acts = {
      {"relu", std::make_shared<ReLU>()},
      {"relu6", std::make_shared<ReLU6>()},
      {"leaky_relu", std::make_shared<LeakyReLU>(0.2)},
      {"elu", std::make_shared<ELU>(0.7)},
      {"selu", std::make_shared<SELU>()},
      {"gelu", std::make_shared<GELU>()},
      {"gelu_tanh", std::make_shared<GELU>(true)},
      {"silu", std::make_shared<SiLU>()},
      {"sigmoid", std::make_shared<Sigmoid>()},
      {"tanh", std::make_shared<Tanh>()},
      {"softplus", std::make_shared<Softplus>(2.0, 5.0)},
      {"softsign", std::make_shared<Softsign>()},
      {"hardsigmoid", std::make_shared<HardSigmoid>()},
      {"hardswish", std::make_shared<HardSwish>()},
      {"softmax", std::make_shared<Softmax>(1)},
      {"logsoftmax", std::make_shared<LogSoftmax>(-1)},
  };
  for (auto& [name, m] : acts) check_layer("act_" + name, *m, 1e-5, 1e-6);
}

// Runs a loss on the case's inputs x0.. and targets t0.., backpropagates gy and compares.
void check_loss(const std::string& c, int inputs,
                const std::function<Tensor(const TensorList&, const TensorList&)>& fn) {
  SCOPED_TRACE(c);
  TensorList xs, ts;
  for (int i = 0; i < inputs; ++i)
    xs.push_back(g(c + ".x" + std::to_string(i)).clone().set_requires_grad());
  for (int i = 0; has(c + ".t" + std::to_string(i)); ++i)
    ts.push_back(g(c + ".t" + std::to_string(i)));
  Tensor y = fn(xs, ts);
  expect_close(y, g(c + ".y"), 1e-5, 1e-6, "loss");
  y.backward(g(c + ".gy"));
  for (int i = 0; i < inputs; ++i)
    expect_close(xs[i].grad(), g(c + ".gx" + std::to_string(i)), 1e-5, 1e-6,
                 "gradient of input " + std::to_string(i));
}

TEST(NnGolden, Losses) {
  using L = const TensorList&;
  check_loss("ce", 1, [](L x, L t) { return cross_entropy(x[0], t[0]); });
  check_loss("ce_weighted_smooth", 1, [](L x, L t) {
    return cross_entropy(x[0], t[0], {.weight = t[1], .label_smoothing = 0.1});
  });
  check_loss("ce_ignore_smooth", 1,
             [](L x, L t) { return cross_entropy(x[0], t[0], {.label_smoothing = 0.2}); });
  check_loss("ce_sum", 1,
             [](L x, L t) { return cross_entropy(x[0], t[0], {.reduction = Reduction::Sum}); });
  check_loss("ce_none", 1,
             [](L x, L t) { return cross_entropy(x[0], t[0], {.reduction = Reduction::None}); });
  check_loss("ce_soft", 1,
             [](L x, L t) { return cross_entropy(x[0], t[0], {.label_smoothing = 0.1}); });
  check_loss("ce_spatial", 1, [](L x, L t) { return cross_entropy(x[0], t[0]); });
  check_loss("nll", 1, [](L x, L t) { return nll_loss(x[0], t[0], {.weight = t[1]}); });
  check_loss("bce", 1, [](L x, L t) { return binary_cross_entropy(x[0], t[0]); });
  check_loss("bce_logits", 1,
             [](L x, L t) { return binary_cross_entropy_with_logits(x[0], t[0], Tensor(), t[1]); });
  check_loss("mse", 1, [](L x, L t) { return mse_loss(x[0], t[0]); });
  check_loss("l1", 1, [](L x, L t) { return l1_loss(x[0], t[0], Reduction::Sum); });
  check_loss("huber", 1, [](L x, L t) { return huber_loss(x[0], t[0], 0.7); });
  check_loss("smooth_l1", 1, [](L x, L t) { return smooth_l1_loss(x[0], t[0], 0.5); });
  check_loss("kl_div", 1, [](L x, L t) { return kl_div(x[0], t[0], Reduction::BatchMean); });
  check_loss("kl_div_log", 1, [](L x, L t) { return kl_div(x[0], t[0], Reduction::Sum, true); });
  check_loss("cosine_embedding", 2,
             [](L x, L t) { return cosine_embedding_loss(x[0], x[1], t[0], 0.2); });
  check_loss("triplet", 3, [](L x, L) { return triplet_margin_loss(x[0], x[1], x[2], 0.5); });
}

// Five steps from p0 with the fixed gradients g0..g4, compared after every step.
void check_optimizer(const std::string& c,
                     const std::function<std::shared_ptr<Optimizer>(Tensor&)>& make) {
  SCOPED_TRACE(c);
  Tensor p = g("optim.p0").clone().set_requires_grad();
  auto opt = make(p);
  for (int k = 0; k < 5; ++k) {
    p.set_grad(g("optim.g" + std::to_string(k)).clone());
    opt->step();
    expect_close(p, g("optim_" + c + ".p" + std::to_string(k)), 1e-5, 1e-6,
                 "after step " + std::to_string(k + 1));
  }
}

TEST(NnGolden, Optimizers) {
  auto group = [](Tensor& p) { return single_group({p}); };
  check_optimizer("sgd", [&](Tensor& p) {
    return std::make_shared<SGD>(group(p), Options{{"lr", 0.1}});
  });
  check_optimizer("sgd_momentum", [&](Tensor& p) {
    return std::make_shared<SGD>(
        group(p),
        Options{{"lr", 0.1}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.01}});
  });
  check_optimizer("sgd_nesterov", [&](Tensor& p) {
    return std::make_shared<SGD>(std::vector<Tensor>{p}, 0.1, 0.9, 0, true);
  });
  check_optimizer("adam", [&](Tensor& p) {
    return std::make_shared<Adam>(group(p), Options{{"lr", 0.01}, {"weight_decay", 0.1}});
  });
  check_optimizer("adam_amsgrad", [&](Tensor& p) {
    return std::make_shared<Adam>(
        group(p), Options{{"lr", 0.01}, {"beta1", 0.8}, {"beta2", 0.9}, {"amsgrad", 1}});
  });
  check_optimizer("adamw", [&](Tensor& p) {
    return std::make_shared<AdamW>(group(p), Options{{"lr", 0.01}});
  });
  check_optimizer("rmsprop", [&](Tensor& p) {
    return std::make_shared<RMSprop>(group(p), Options{{"lr", 0.01}});
  });
  check_optimizer("rmsprop_centered", [&](Tensor& p) {
    return std::make_shared<RMSprop>(
        group(p), Options{{"lr", 0.01}, {"momentum", 0.5}, {"centered", 1}, {"weight_decay", 0.1}});
  });
  check_optimizer("adagrad", [&](Tensor& p) {
    return std::make_shared<Adagrad>(
        group(p), Options{{"lr", 0.1}, {"lr_decay", 0.01}, {"initial_accumulator_value", 0.1}});
  });
  check_optimizer("adadelta", [&](Tensor& p) {
    return std::make_shared<Adadelta>(group(p),
                                      Options{{"lr", 1.0}, {"rho", 0.8}, {"weight_decay", 0.05}});
  });
  check_optimizer("adamax", [&](Tensor& p) {
    return std::make_shared<Adamax>(group(p), Options{{"lr", 0.02}});
  });
}

// The lr after each of 12 steps of a schedule started at lr 0.5.
void check_schedule(const std::string& c,
                    const std::function<std::function<void(int)>(Optimizer&)>& make) {
  SCOPED_TRACE(c);
  Tensor p = zeros({1}).set_requires_grad();
  SGD opt({p}, 0.5);
  auto step = make(opt);
  std::vector<double> lrs{opt.lr()};
  for (int k = 0; k < 12; ++k) {
    step(k);
    lrs.push_back(opt.lr());
  }
  expect_close(from_vector(lrs), g("sched_" + c + ".lr"), 1e-9, 1e-12, "lr");
}

template <class S, class... A>
std::function<std::function<void(int)>(Optimizer&)> sched(A... args) {
  return [=](Optimizer& o) {
    auto s = std::make_shared<S>(o, args...);
    return std::function<void(int)>([s](int) { s->step(); });
  };
}

TEST(NnGolden, LearningRateSchedules) {
  check_schedule("step", sched<StepLR>(int64_t{3}, 0.5));
  check_schedule("multistep", sched<MultiStepLR>(std::vector<int64_t>{2, 5, 9}, 0.3));
  check_schedule("exponential", sched<ExponentialLR>(0.9));
  check_schedule("cosine", sched<CosineAnnealingLR>(int64_t{10}, 0.01));
  check_schedule("warm_restarts", sched<CosineAnnealingWarmRestarts>(int64_t{3}, int64_t{2}, 0.05));
  check_schedule("one_cycle", sched<OneCycleLR>(1.0, int64_t{13}));
  std::vector<double> plateau{1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.86, 0.9, 0.9, 0.9, 0.9};
  check_schedule("plateau", [&](Optimizer& o) {
    auto s = std::make_shared<ReduceLROnPlateau>(o, true, 0.5, 2, 1e-4, 1);
    return std::function<void(int)>([s, plateau](int k) { s->step(plateau[k]); });
  });
}

// Loads a case's parameters into a module by PyTorch's names.
void load_params(const std::string& c, Module& m) {
  NamedTensors state;
  for (auto& [name, t] : m.named_parameters()) state.emplace_back(name, g(c + ".param." + name));
  m.load_state_dict(state);
}

void check_param_grads(const std::string& c, Module& m, double rtol, double atol) {
  for (auto& [name, t] : m.named_parameters())
    expect_close(t.grad(), g(c + ".grad." + name), rtol, atol, "gradient of " + name);
}

void check_rnn(const std::string& c, RNNBase& m) {
  SCOPED_TRACE(c);
  load_params(c, m);
  Tensor x = g(c + ".x0").clone().set_requires_grad();
  Tensor h0 = has(c + ".h0") ? g(c + ".h0") : Tensor();
  Tensor c0 = has(c + ".c0") ? g(c + ".c0") : Tensor();
  Tensor lengths = has(c + ".lengths") ? g(c + ".lengths") : Tensor();
  RNNOutput out = m.forward(x, h0, c0, lengths);
  expect_close(out.output, g(c + ".y"), 1e-5, 1e-6, "output");
  expect_close(out.h_n, g(c + ".h"), 1e-5, 1e-6, "h_n");
  Tensor loss = sum(out.output * g(c + ".gy")) + sum(out.h_n * g(c + ".gh"));
  if (has(c + ".c")) {
    expect_close(out.c_n, g(c + ".c"), 1e-5, 1e-6, "c_n");
    loss = loss + sum(out.c_n * g(c + ".gc"));
  }
  loss.backward();
  expect_close(x.grad(), g(c + ".gx0"), 1e-5, 1e-5, "input gradient");
  check_param_grads(c, m, 1e-5, 1e-5);
}

TEST(NnGolden, RecurrentLayers) {
  RNN rnn(3, 4, {.num_layers = 2});
  check_rnn("rnn_tanh", rnn);
  RNN relu_rnn(3, 4, {.batch_first = true, .nonlinearity = "relu"});
  check_rnn("rnn_relu", relu_rnn);
  LSTM lstm(3, 4, {.num_layers = 2, .bidirectional = true});
  check_rnn("lstm_bi", lstm);
  LSTM lstm_len(3, 4, {.batch_first = true, .bidirectional = true});
  check_rnn("lstm_lengths", lstm_len);
  GRU gru(3, 5, {.num_layers = 2, .bidirectional = true});
  check_rnn("gru_bi", gru);
  GRU gru_len(2, 3);
  check_rnn("gru_lengths", gru_len);
}

TEST(NnGolden, MultiHeadAttention) {
  const std::string c = "mha";
  MultiHeadAttention mha(8, 2);
  load_params(c, mha);
  Tensor q = g(c + ".q").clone().set_requires_grad(), k = g(c + ".k").clone().set_requires_grad(),
         v = g(c + ".v").clone().set_requires_grad();
  AttentionMasks masks{.key_padding_mask = g(c + ".kpm").to(DType::Bool),
                       .attn_mask = g(c + ".attn_mask")};
  AttentionOutput out = mha.forward(q, k, v, masks);
  expect_close(out.output, g(c + ".y"), 1e-5, 1e-6, "output");
  expect_close(out.weights, g(c + ".weights"), 1e-5, 1e-6, "weights");
  out.output.backward(g(c + ".gy"));
  expect_close(q.grad(), g(c + ".gq"), 1e-5, 1e-6, "query gradient");
  expect_close(k.grad(), g(c + ".gk"), 1e-5, 1e-6, "key gradient");
  expect_close(v.grad(), g(c + ".gv"), 1e-5, 1e-6, "value gradient");
  check_param_grads(c, mha, 1e-5, 1e-6);
}

TEST(NnGolden, TransformerLayers) {
  {
    const std::string c = "encoder";
    TransformerEncoderLayer enc(8, 2, {.dim_feedforward = 16, .dropout = 0, .batch_first = true});
    load_params(c, enc);
    Tensor x = g(c + ".x0").clone().set_requires_grad();
    Tensor y = enc.forward(x, {.key_padding_mask = g(c + ".kpm").to(DType::Bool)});
    expect_close(y, g(c + ".y"), 1e-5, 1e-5, "encoder output");
    y.backward(g(c + ".gy"));
    expect_close(x.grad(), g(c + ".gx0"), 1e-5, 1e-5, "encoder input gradient");
    check_param_grads(c, enc, 1e-5, 1e-5);
  }
  {
    const std::string c = "decoder";
    TransformerDecoderLayer dec(
        8, 2, {.dim_feedforward = 16, .dropout = 0, .activation = "gelu", .norm_first = true});
    load_params(c, dec);
    Tensor tgt = g(c + ".x0").clone().set_requires_grad();
    Tensor mem = g(c + ".x1").clone().set_requires_grad();
    Tensor y = dec.forward(tgt, mem, {.causal = true});
    expect_close(y, g(c + ".y"), 1e-5, 1e-5, "decoder output");
    y.backward(g(c + ".gy"));
    expect_close(tgt.grad(), g(c + ".gx0"), 1e-5, 1e-5, "decoder target gradient");
    expect_close(mem.grad(), g(c + ".gx1"), 1e-5, 1e-5, "decoder memory gradient");
    check_param_grads(c, dec, 1e-5, 1e-5);
  }
}

TEST(NnGolden, CtcLoss) {
  const std::string c = "ctc";
  Tensor x = g(c + ".x0").clone().set_requires_grad();
  Tensor lp = log_softmax(x, 2);
  Tensor loss = ctc_loss(lp, g(c + ".targets"), g(c + ".in_len"), g(c + ".tgt_len"));
  expect_close(loss, g(c + ".y"), 1e-5, 1e-6, "loss");
  loss.backward();
  expect_close(x.grad(), g(c + ".gx0"), 1e-5, 1e-6, "gradient");
  NoGradGuard no_grad;
  expect_close(
      ctc_loss(lp, g(c + ".targets"), g(c + ".in_len"), g(c + ".tgt_len"), 0, Reduction::None),
      g(c + ".y_none"), 1e-5, 1e-6, "per-sequence losses");
}

}  // namespace
}  // namespace tessera::nn
