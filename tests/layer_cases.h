// The layers of the training stack, each with an input shape (without the batch), for
// tests that run every layer through a path (graph mode, ONNX export) and compare it with
// the layer's eager forward.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tessera/graph/function.h"
#include "tessera/nn/nn.h"
#include "test_util.h"

namespace tessera::testing {

// A two-input layer (Bilinear, a decoder layer) run on one input split in two along the
// last axis, so it fits the one-input cases below.
class SplitInput : public nn::Module {
 public:
  using Call = std::function<Tensor(nn::Module&, const Tensor&, const Tensor&)>;
  SplitInput(nn::ModulePtr layer, int64_t first, Call call)
      : Module("SplitInput"),
        layer_(register_module("layer", layer)),
        first_(first),
        call_(std::move(call)) {}
  Tensor forward(const Tensor& x) override {
    int64_t last = x.dim() - 1;
    return call_(*layer_, x.slice(last, 0, first_), x.slice(last, first_, x.shape()[last]));
  }

 private:
  nn::ModulePtr layer_;
  int64_t first_;
  Call call_;
};

struct LayerCase {
  std::string name;
  std::function<nn::ModulePtr()> make;
  Dims input;  // without the batch
  DType dtype = DType::Float32;
};

inline std::vector<LayerCase> layer_cases() {
  using namespace nn;
  auto seq = [](std::initializer_list<ModulePtr> layers) {
    return std::make_shared<Sequential>(layers);
  };
  return {
      {"Linear", [] { return std::make_shared<Linear>(6, 4); }, {6}},
      {"Conv1d",
       [] { return std::make_shared<Conv1d>(3, 4, 3, ConvOptions{.padding = 1}); },
       {3, 9}},
      {"Conv2d+relu",
       [] {
         return std::make_shared<Conv2d>(2, 4, 3, ConvOptions{.stride = 2, .activation = "relu"});
       },
       {2, 9, 9}},
      {"Conv3d", [] { return std::make_shared<Conv3d>(2, 3, 2); }, {2, 4, 4, 4}},
      {"DepthwiseConv2d", [] { return std::make_shared<DepthwiseConv2d>(4, 3); }, {4, 7, 7}},
      {"SeparableConv2d", [] { return std::make_shared<SeparableConv2d>(3, 5, 3); }, {3, 8, 8}},
      {"ConvTranspose2d",
       [] { return std::make_shared<ConvTranspose2d>(3, 2, 3, ConvTransposeOptions{.stride = 2}); },
       {3, 5, 5}},
      {"MaxPool2d", [] { return std::make_shared<MaxPool2d>(2); }, {3, 8, 8}},
      {"MaxPool1d", [] { return std::make_shared<MaxPool1d>(3); }, {2, 9}},
      {"AvgPool2d", [] { return std::make_shared<AvgPool2d>(2); }, {3, 6, 6}},
      {"AdaptiveAvgPool2d", [] { return std::make_shared<AdaptiveAvgPool2d>(3); }, {2, 7, 7}},
      {"GlobalMaxPool", [] { return std::make_shared<GlobalMaxPool>(); }, {3, 5, 5}},
      {"BatchNorm2d", [] { return std::make_shared<BatchNorm2d>(3); }, {3, 4, 4}},
      {"LayerNorm", [] { return std::make_shared<LayerNorm>(Shape{8}); }, {5, 8}},
      {"GroupNorm", [] { return std::make_shared<GroupNorm>(2, 4); }, {4, 3, 3}},
      {"InstanceNorm", [] { return std::make_shared<InstanceNorm>(3, 1e-5, true); }, {3, 6}},
      {"Embedding", [] { return std::make_shared<Embedding>(10, 4, 0); }, {5}, DType::Int64},
      {"Upsample", [] { return std::make_shared<Upsample>(2.0, "bilinear"); }, {2, 4, 4}},
      {"ZeroPad2d", [] { return std::make_shared<ZeroPad2d>(1); }, {2, 3, 3}},
      {"activations",
       [seq] {
         return seq({std::make_shared<GELU>(), std::make_shared<SiLU>(), std::make_shared<ELU>(),
                     std::make_shared<HardSwish>(), std::make_shared<Softplus>(),
                     std::make_shared<LeakyReLU>(), std::make_shared<Tanh>(),
                     std::make_shared<Softmax>()});
       },
       {7}},
      {"LSTM bidirectional 2 layers",
       [] {
         return std::make_shared<LSTM>(
             4, 5, RNNOptions{.num_layers = 2, .batch_first = true, .bidirectional = true});
       },
       {6, 4}},
      {"GRU", [] { return std::make_shared<GRU>(3, 4, RNNOptions{.batch_first = true}); }, {5, 3}},
      {"MultiHeadAttention",
       [] { return std::make_shared<MultiHeadAttention>(8, 2, 0.0, true, true); },
       {5, 8}},
      {"TransformerEncoderLayer",
       [] {
         return std::make_shared<TransformerEncoderLayer>(
             8, 2, TransformerOptions{.dim_feedforward = 16, .dropout = 0.0, .batch_first = true});
       },
       {5, 8}},
      {"Bilinear",
       [] {
         return std::make_shared<SplitInput>(std::make_shared<Bilinear>(3, 4, 5), 3,
                                             [](nn::Module& m, const Tensor& a, const Tensor& b) {
                                               return static_cast<Bilinear&>(m).forward(a, b);
                                             });
       },
       {7}},
      {"ConvTranspose1d",
       [] {
         return std::make_shared<ConvTranspose1d>(
             2, 3, 3, ConvTransposeOptions{.stride = 2, .padding = 1, .output_padding = 1});
       },
       {2, 6}},
      {"AvgPool1d", [] { return std::make_shared<AvgPool1d>(2); }, {3, 8}},
      {"AdaptiveAvgPool1d", [] { return std::make_shared<AdaptiveAvgPool1d>(4); }, {2, 8}},
      {"GlobalAvgPool", [] { return std::make_shared<GlobalAvgPool>(); }, {3, 4, 4}},
      {"BatchNorm1d", [] { return std::make_shared<BatchNorm1d>(4); }, {4}},
      {"Dropout (eval)",
       [seq] {
         return seq({std::make_shared<Dropout>(0.5), std::make_shared<Dropout2d>(0.5)});
       },
       {2, 3, 3}},
      {"Flatten, Unflatten, Reshape",
       [seq] {
         return seq({std::make_shared<Flatten>(), std::make_shared<Unflatten>(1, Shape{3, 4}),
                     std::make_shared<Reshape>(Shape{4, 3})});
       },
       {2, 6}},
      {"Upsample nearest", [] { return std::make_shared<Upsample>(2.0, "nearest"); }, {2, 3, 3}},
      {"more activations",
       [seq] {
         return seq({std::make_shared<ReLU6>(), std::make_shared<SELU>(),
                     std::make_shared<Sigmoid>(), std::make_shared<Softsign>(),
                     std::make_shared<HardSigmoid>(), std::make_shared<ReLU>(),
                     std::make_shared<Identity>(), std::make_shared<LogSoftmax>()});
       },
       {7}},
      {"RNN tanh",
       [] { return std::make_shared<RNN>(3, 4, RNNOptions{.batch_first = true}); },
       {5, 3}},
      {"Residual", [] { return std::make_shared<Residual>(std::make_shared<Linear>(6, 6)); }, {6}},
      {"TransformerDecoderLayer",
       [] {
         return std::make_shared<SplitInput>(
             std::make_shared<TransformerDecoderLayer>(
                 8, 2,
                 TransformerOptions{.dim_feedforward = 16, .dropout = 0.0, .batch_first = true}),
             8, [](nn::Module& m, const Tensor& tgt, const Tensor& memory) {
               return static_cast<TransformerDecoderLayer&>(m).forward(tgt, memory);
             });
       },
       {5, 16}},
  };
}

// The layer, put in eval mode, as a function of one input whose batch is unknown; its
// parameters and buffers are the function's variables.
inline Function layer_function(const nn::ModulePtr& layer, const LayerCase& c) {
  layer->eval();
  graph::NamedTensorList weights = layer->named_parameters();
  for (auto& b : layer->named_buffers()) weights.push_back(b);
  Dims spec{-1};
  for (int64_t d : c.input) spec.push_back(d);
  return function([layer](const TensorList& in) { return TensorList{layer->forward(in[0])}; },
                  {.signature = {graph::TensorSpec{spec, c.dtype, "x"}}, .variables = weights});
}

// A batch of random inputs for a case (token ids for int64 inputs).
inline Tensor layer_input(const LayerCase& c, int64_t batch) {
  Dims shape{batch};
  for (int64_t d : c.input) shape.push_back(d);
  if (c.dtype == DType::Int64) {
    Generator gen(batch);
    return randint(0, 10, shape, DType::Int64, &gen);
  }
  return random_tensor(shape, DType::Float32, -1, 1, batch);
}

}  // namespace tessera::testing
