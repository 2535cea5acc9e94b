#include "conv_onednn.h"

#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <vector>

#include "tessera/core/parallel.h"

namespace tessera::cpu {
namespace {

// Fixed, so the weight gradient's summation order never depends on the thread count.
constexpr int64_t kWeightGradChunks = 4;

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// The geometry as oneDNN dims: 2-d when the leading spatial dim is trivial.
struct Dims {
  memory::dims src, wei, bias, dst, strides, dilates, pad_l, pad_r;
  tag src_tag, wei_tag;
};

Dims to_dims(const ConvGeometry& g) {
  Dims d;
  int first = (g.in[0] == 1 && g.kernel[0] == 1 && g.out[0] == 1 && g.pad[0] == 0) ? 1 : 0;
  d.src = {g.batch, g.in_channels};
  d.dst = {g.batch, g.out_channels};
  if (g.groups == 1) {
    d.wei = {g.out_channels, g.in_channels};
  } else {
    d.wei = {g.groups, g.out_channels / g.groups, g.in_channels / g.groups};
  }
  for (int i = first; i < 3; ++i) {
    d.src.push_back(g.in[i]);
    d.dst.push_back(g.out[i]);
    d.wei.push_back(g.kernel[i]);
    d.strides.push_back(g.stride[i]);
    d.dilates.push_back(g.dilation[i] - 1);
    d.pad_l.push_back(g.pad[i]);
    int64_t span = (g.out[i] - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1;
    d.pad_r.push_back(std::max<int64_t>(0, span - g.in[i] - g.pad[i]));
  }
  d.bias = {g.out_channels};
  bool two_d = first == 1;
  d.src_tag = two_d ? tag::nchw : tag::ncdhw;
  d.wei_tag = g.groups == 1 ? (two_d ? tag::oihw : tag::oidhw) : (two_d ? tag::goihw : tag::goidhw);
  return d;
}

memory::desc any_md(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::any); }
// Activations stay in the caller's plain layout when the input has few channels: reordering
// a 1-channel image into oneDNN's blocked layout costs more than the convolution (measured
// 0.71 ms plain against 4.3 ms blocked for 128x1->32 28x28, bench/RESULTS.md), and so does
// reordering its 32-channel output back (forward with bias: 0.69 ms plain against 0.60 ms
// blocked + 0.97 ms reorder, 2 threads). Otherwise oneDNN's choice plus reorders wins.
memory::desc act_md(const Dims& d, const memory::dims& dims) {
  bool plain = d.src[1] <= 4 && d.wei.size() == d.src.size();  // few channels, no groups
  return plain ? memory::desc(dims, dt::f32, d.src_tag) : any_md(dims);
}

dnnl::convolution_forward::primitive_desc forward_pd(const Dims& d, bool with_bias,
                                                     dnnl::prop_kind kind) {
  auto desc =
      with_bias ? dnnl::convolution_forward::desc(
                      kind, dnnl::algorithm::convolution_direct, act_md(d, d.src), any_md(d.wei),
                      any_md(d.bias), act_md(d, d.dst), d.strides, d.dilates, d.pad_l, d.pad_r)
                : dnnl::convolution_forward::desc(kind, dnnl::algorithm::convolution_direct,
                                                  act_md(d, d.src), any_md(d.wei), act_md(d, d.dst),
                                                  d.strides, d.dilates, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, engine());
}

// A user array in its plain layout, reordered into `want` when that differs.
struct Operand {
  memory user, inner;
  Operand(const memory::desc& want, const memory::dims& dims, tag t, const void* data,
          dnnl::stream& s, bool read)
      : user(memory::desc(dims, dt::f32, t), engine(), const_cast<void*>(data)) {
    if (want == user.get_desc()) {
      inner = user;
    } else {
      inner = memory(want, engine());
      if (read) dnnl::reorder(user, inner).execute(s, user, inner);
    }
  }
  void write_back(dnnl::stream& s) {
    if (inner != user) dnnl::reorder(inner, user).execute(s, inner, user);
  }
};

template <typename F>
bool guarded(F&& f) {
  try {
    f();
    return true;
  } catch (const dnnl::error&) {
    return false;  // no implementation for this geometry
  }
}

}  // namespace

bool onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y) {
  return guarded([&] {
    Dims d = to_dims(g);
    // forward_training, not forward_inference: oneDNN then picks 16-channel blocked
    // kernels, whose reorders from NCHW cost a fraction of those into NHWC (depthwise
    // 1x32 112x112: 141 us against 283 us; 128x32->64 14x14: 4.3 ms against 5.7 ms).
    auto pd = forward_pd(d, b != nullptr, dnnl::prop_kind::forward_training);
    dnnl::stream s(engine());
    Operand src(pd.src_desc(), d.src, d.src_tag, x, s, true);
    Operand wei(pd.weights_desc(), d.wei, d.wei_tag, w, s, true);
    Operand dst(pd.dst_desc(), d.dst, d.src_tag, y, s, false);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, src.inner}, {DNNL_ARG_WEIGHTS, wei.inner}, {DNNL_ARG_DST, dst.inner}};
    if (b)
      args[DNNL_ARG_BIAS] =
          memory(memory::desc(d.bias, dt::f32, tag::x), engine(), const_cast<float*>(b));
    dnnl::convolution_forward(pd).execute(s, args);
    dst.write_back(s);
    s.wait();
  });
}

bool onednn_conv_backward_data(const ConvGeometry& g, const float* gy, const float* w, float* gx) {
  return guarded([&] {
    Dims d = to_dims(g);
    auto hint = forward_pd(d, false, dnnl::prop_kind::forward_training);
    auto desc = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct,
                                                      any_md(d.src), any_md(d.wei), any_md(d.dst),
                                                      d.strides, d.dilates, d.pad_l, d.pad_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), hint);
    dnnl::stream s(engine());
    Operand diff_dst(pd.diff_dst_desc(), d.dst, d.src_tag, gy, s, true);
    Operand wei(pd.weights_desc(), d.wei, d.wei_tag, w, s, true);
    Operand diff_src(pd.diff_src_desc(), d.src, d.src_tag, gx, s, false);
    dnnl::convolution_backward_data(pd).execute(s, {{DNNL_ARG_DIFF_DST, diff_dst.inner},
                                                    {DNNL_ARG_WEIGHTS, wei.inner},
                                                    {DNNL_ARG_DIFF_SRC, diff_src.inner}});
    diff_src.write_back(s);
    s.wait();
  });
}

// One oneDNN weight-gradient call on the calling thread only.
static bool backward_weight_single_thread(const ConvGeometry& g, const float* x, const float* gy,
                                          float* gw, float* gb) {
  return guarded([&] {
    Dims d = to_dims(g);
    auto hint = forward_pd(d, gb != nullptr, dnnl::prop_kind::forward_training);
    auto desc = gb ? dnnl::convolution_backward_weights::desc(
                         dnnl::algorithm::convolution_direct, act_md(d, d.src), any_md(d.wei),
                         any_md(d.bias), act_md(d, d.dst), d.strides, d.dilates, d.pad_l, d.pad_r)
                   : dnnl::convolution_backward_weights::desc(
                         dnnl::algorithm::convolution_direct, act_md(d, d.src), any_md(d.wei),
                         act_md(d, d.dst), d.strides, d.dilates, d.pad_l, d.pad_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), hint);
    dnnl::stream s(engine());
    Operand src(pd.src_desc(), d.src, d.src_tag, x, s, true);
    Operand diff_dst(pd.diff_dst_desc(), d.dst, d.src_tag, gy, s, true);
    Operand diff_wei(pd.diff_weights_desc(), d.wei, d.wei_tag, gw, s, false);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src.inner},
                                         {DNNL_ARG_DIFF_DST, diff_dst.inner},
                                         {DNNL_ARG_DIFF_WEIGHTS, diff_wei.inner}};
    if (gb) args[DNNL_ARG_DIFF_BIAS] = memory(memory::desc(d.bias, dt::f32, tag::x), engine(), gb);
    dnnl::convolution_backward_weights(pd).execute(s, args);
    diff_wei.write_back(s);
    s.wait();
  });
}

bool onednn_conv_backward_weight(const ConvGeometry& g, const float* x, const float* gy, float* gw,
                                 float* gb) {
  // oneDNN splits its batch reduction by thread count, so its result changes with the
  // number of threads. For the same bits on any thread count the batch is cut into a fixed
  // number of chunks, each reduced on one thread, and the chunks are summed in order.
  const int64_t chunks = std::min<int64_t>(g.batch, kWeightGradChunks);
  const int64_t wsize = g.out_channels * (g.in_channels / g.groups) * g.kernel_volume();
  if (chunks == 0) {  // an empty batch contributes nothing
    std::fill(gw, gw + wsize, 0.0f);
    if (gb) std::fill(gb, gb + g.out_channels, 0.0f);
    return true;
  }
  std::vector<float> partial(static_cast<size_t>(chunks * (wsize + g.out_channels)));
  std::vector<char> ok(chunks, 0);
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int64_t c = lo; c < hi; ++c) {
      int64_t first = g.batch * c / chunks, last = g.batch * (c + 1) / chunks;
      ConvGeometry part = g;
      part.batch = last - first;
      float* pw = partial.data() + c * (wsize + g.out_channels);
      ok[c] = backward_weight_single_thread(part, x + first * g.in_channels * g.in_plane(),
                                            gy + first * g.out_channels * g.out_plane(), pw,
                                            gb ? pw + wsize : nullptr);
    }
    omp_set_num_threads(saved);
  });
  for (char v : ok) {
    if (!v) return false;
  }
  const int64_t stride = wsize + g.out_channels;
  for (int64_t i = 0; i < wsize; ++i) {
    float acc = partial[i];
    for (int64_t c = 1; c < chunks; ++c) acc += partial[c * stride + i];
    gw[i] = acc;
  }
  if (gb) {
    for (int64_t i = 0; i < g.out_channels; ++i) {
      float acc = partial[wsize + i];
      for (int64_t c = 1; c < chunks; ++c) acc += partial[c * stride + wsize + i];
      gb[i] = acc;
    }
  }
  return true;
}

}  // namespace tessera::cpu
