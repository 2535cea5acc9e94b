#include "tessera/nn/attention.h"

#include <cmath>
#include <limits>

#include "tessera/core/error.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/index.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/nn.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

Tensor affine(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = matmul(x, w.t());
  return b.defined() ? y + b : y;
}

// [T, N, E] -> [N * heads, T, E / heads]
Tensor split_heads(const Tensor& x, int64_t heads) {
  // -1, not N * heads: a traced graph keeps the batch size N unknown.
  int64_t T = x.size(0), E = x.size(2);
  return transpose(reshape(x, {T, -1, E / heads}), 0, 1);
}

// Adds a bool (true = forbidden) or float mask to scores [B, L, S].
Tensor apply_mask(const Tensor& scores, const Tensor& mask) {
  if (mask.dtype() == DType::Bool)
    return masked_fill(scores, mask, -std::numeric_limits<double>::infinity());
  return scores + mask.to(scores.dtype());
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(int64_t embed_dim, int64_t heads, double dropout, bool bias,
                                       bool batch_first)
    : Module("MultiHeadAttention"),
      embed_dim_(embed_dim),
      heads_(heads),
      dropout_(dropout),
      batch_first_(batch_first) {
  check(heads >= 1 && embed_dim % heads == 0, "MultiHeadAttention", "num_heads = ", heads,
        " must divide embed_dim = ", embed_dim);
  Tensor w = empty({3 * embed_dim, embed_dim});
  in_proj_weight = register_parameter("in_proj_weight", init::xavier_uniform_(w));
  if (bias) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * embed_dim}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias));
  if (bias) init::zeros_(out_proj->bias);
}

AttentionOutput MultiHeadAttention::forward(const Tensor& query, const Tensor& key,
                                            const Tensor& value, const AttentionMasks& masks,
                                            bool need_weights) {
  const char* op = "MultiHeadAttention";
  Tensor q = batch_first_ ? transpose(query, 0, 1) : query;
  Tensor k = batch_first_ ? transpose(key, 0, 1) : key;
  Tensor v = batch_first_ ? transpose(value, 0, 1) : value;
  check(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && q.size(2) == embed_dim_ &&
            k.size(2) == embed_dim_ && v.size(2) == embed_dim_ && k.size(0) == v.size(0) &&
            q.size(1) == k.size(1) && k.size(1) == v.size(1),
        op, "query ", query.shape(), ", key ", key.shape(), " and value ", value.shape(),
        " must be ", batch_first_ ? "[N, L, E]" : "[L, N, E]", " with E = ", embed_dim_,
        " and matching batch and key lengths");
  const int64_t L = q.size(0), N = q.size(1), S = k.size(0), E = embed_dim_, hd = E / heads_;
  auto part = [&](const Tensor& t, int64_t i) {
    return t.defined() ? t.narrow(0, i * E, E) : Tensor();
  };
  Tensor qh = split_heads(affine(q, part(in_proj_weight, 0), part(in_proj_bias, 0)), heads_);
  Tensor kh = split_heads(affine(k, part(in_proj_weight, 1), part(in_proj_bias, 1)), heads_);
  Tensor vh = split_heads(affine(v, part(in_proj_weight, 2), part(in_proj_bias, 2)), heads_);
  // Scores [N * heads, L, S], scaled like PyTorch (the query before the product).
  Tensor scores = matmul(qh * (1.0 / std::sqrt(static_cast<double>(hd))), transpose(kh, 1, 2));
  if (masks.attn_mask.defined()) {
    const Shape& m = masks.attn_mask.shape();
    check((m == Shape{L, S}) || (m == Shape{N * heads_, L, S}), op, "attn_mask shape ", m,
          ", expected [", L, ", ", S, "] or [", N * heads_, ", ", L, ", ", S, "]");
    scores = apply_mask(scores, masks.attn_mask);
  }
  if (masks.causal) scores = apply_mask(scores, triu(ones({L, S}, DType::Bool), 1));
  if (masks.key_padding_mask.defined()) {
    const Tensor& kpm = masks.key_padding_mask;
    check(kpm.shape() == Shape{N, S}, op, "key_padding_mask shape ", kpm.shape(), ", expected [", N,
          ", ", S, "]");
    Tensor per_head = reshape(expand(reshape(kpm, {N, 1, 1, S}), {N, heads_, 1, S}), {-1, 1, S});
    scores = apply_mask(scores, per_head);
  }
  Tensor attn = softmax(scores, -1);
  if (dropout_ > 0) attn = dropout(attn, dropout_, is_training());
  Tensor out = matmul(attn, vh);                                // [N * heads, L, hd]
  out = reshape(transpose(out, 0, 1).contiguous(), {L, N, E});  // heads side by side
  out = (*out_proj)(out);
  AttentionOutput result;
  result.output = batch_first_ ? transpose(out, 0, 1) : out;
  if (need_weights) result.weights = mean(reshape(attn, {N, heads_, L, S}), {1});
  return result;
}

TransformerLayer::TransformerLayer(const char* type, int64_t d, int64_t heads, TransformerOptions o)
    : Module(type), o_(o) {
  check(o.activation == "relu" || o.activation == "gelu", type,
        "activation must be relu or gelu, got ", o.activation);
  self_attn = register_module(
      "self_attn", std::make_shared<MultiHeadAttention>(d, heads, o.dropout, true, o.batch_first));
  linear1 = register_module("linear1", std::make_shared<Linear>(d, o.dim_feedforward));
  linear2 = register_module("linear2", std::make_shared<Linear>(o.dim_feedforward, d));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(Shape{d}, o.layer_norm_eps));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(Shape{d}, o.layer_norm_eps));
}

Tensor TransformerLayer::self_attention(const Tensor& x, const AttentionMasks& masks) {
  return dropout(self_attn->forward(x, x, x, masks, false).output, o_.dropout, is_training());
}

Tensor TransformerLayer::feed_forward(const Tensor& x) {
  bool train = is_training();
  Tensor h = (*linear1)(x);
  h = dropout(o_.activation == "gelu" ? gelu(h) : relu(h), o_.dropout, train);
  return dropout((*linear2)(h), o_.dropout, train);
}

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d, int64_t heads, TransformerOptions o)
    : TransformerLayer("TransformerEncoderLayer", d, heads, o) {}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const AttentionMasks& masks) {
  Tensor x = src;
  if (o_.norm_first) {
    x = x + self_attention((*norm1)(x), masks);
    return x + feed_forward((*norm2)(x));
  }
  x = (*norm1)(x + self_attention(x, masks));
  return (*norm2)(x + feed_forward(x));
}

TransformerDecoderLayer::TransformerDecoderLayer(int64_t d, int64_t heads, TransformerOptions o)
    : TransformerLayer("TransformerDecoderLayer", d, heads, o) {
  // Registered after the shared parts; state_dict names match PyTorch's either way.
  multihead_attn = register_module("multihead_attn", std::make_shared<MultiHeadAttention>(
                                                         d, heads, o.dropout, true, o.batch_first));
  norm3 = register_module("norm3", std::make_shared<LayerNorm>(Shape{d}, o.layer_norm_eps));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const AttentionMasks& tgt_masks,
                                        const AttentionMasks& memory_masks) {
  auto cross = [&](const Tensor& x) {
    return dropout(multihead_attn->forward(x, memory, memory, memory_masks, false).output,
                   o_.dropout, is_training());
  };
  Tensor x = tgt;
  if (o_.norm_first) {
    x = x + self_attention((*norm1)(x), tgt_masks);
    x = x + cross((*norm2)(x));
    return x + feed_forward((*norm3)(x));
  }
  x = (*norm1)(x + self_attention(x, tgt_masks));
  x = (*norm2)(x + cross(x));
  return (*norm3)(x + feed_forward(x));
}

}  // namespace tessera::nn
