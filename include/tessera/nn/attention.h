// Multi-head attention and Transformer layers with PyTorch's semantics and parameter
// names (in_proj_weight, in_proj_bias, out_proj.weight, ...; xavier_uniform in-projection
// and zero biases).
#pragma once
#include <string>

#include "tessera/nn/layers.h"
#include "tessera/nn/module.h"
#include "tessera/nn/norm_layers.h"

namespace tessera::nn {

struct AttentionOutput {
  Tensor output;   // [L, N, E] ([N, L, E] with batch_first)
  Tensor weights;  // [N, L, S] averaged over heads (undefined unless need_weights)
};

// Masks: key_padding_mask [N, S] is true where a key is padding (ignored); attn_mask is
// [L, S] or [N * heads, L, S], bool (true = not allowed) or float (added to the scores);
// causal forbids keys after the query position.
struct AttentionMasks {
  Tensor key_padding_mask;
  Tensor attn_mask;
  bool causal = false;
};

class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
                     bool batch_first = false);
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const AttentionMasks& masks = {}, bool need_weights = true);
  // Self-attention: forward(x, x, x).
  Tensor forward(const Tensor& x) override { return forward(x, x, x, {}, false).output; }
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;

 private:
  int64_t embed_dim_, heads_;
  double dropout_;
  bool batch_first_;
};

struct TransformerOptions {
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "relu";  // or "gelu"
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  // pre-norm instead of post-norm
};

// What both Transformer layers have: self-attention, the position-wise feed-forward block
// (linear1, activation, linear2) and the first two layer norms, under PyTorch's names.
class TransformerLayer : public Module {
 public:
  std::shared_ptr<MultiHeadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;

 protected:
  TransformerLayer(const char* type_name, int64_t d_model, int64_t nhead, TransformerOptions o);
  Tensor self_attention(const Tensor& x, const AttentionMasks& masks);  // with dropout
  Tensor feed_forward(const Tensor& x);
  TransformerOptions o_;
};

class TransformerEncoderLayer : public TransformerLayer {
 public:
  TransformerEncoderLayer(int64_t d_model, int64_t nhead, TransformerOptions o = {});
  Tensor forward(const Tensor& src, const AttentionMasks& masks);
  Tensor forward(const Tensor& src) override { return forward(src, {}); }
};

class TransformerDecoderLayer : public TransformerLayer {
 public:
  TransformerDecoderLayer(int64_t d_model, int64_t nhead, TransformerOptions o = {});
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMasks& tgt_masks = {},
                 const AttentionMasks& memory_masks = {});
  std::shared_ptr<MultiHeadAttention> multihead_attn;
  std::shared_ptr<LayerNorm> norm3;
};

}  // namespace tessera::nn
