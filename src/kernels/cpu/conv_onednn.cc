#include "conv_onednn.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <dnnl.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "scratch.h"
#include "tessera/core/allocator.h"
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
  int layout = 0;  // ConvGeometry::layout
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
  d.layout = g.layout;
  return d;
}

memory::desc any_md(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::any); }
// Activations stay in the caller's plain layout when the input has few channels: reordering
// a 1-channel image into oneDNN's blocked layout costs more than the convolution (measured
// 0.71 ms plain against 4.3 ms blocked for 128x1->32 28x28, bench/RESULTS.md), and so does
// reordering its 32-channel output back (forward with bias: 0.69 ms plain against 0.60 ms
// blocked + 0.97 ms reorder, 2 threads). Otherwise oneDNN's choice plus reorders wins, by
// this rule; graph plans time both layouts per convolution instead (ConvGeometry::layout).
memory::desc act_md(const Dims& d, const memory::dims& dims) {
  bool plain = d.layout == 1 ||
               (d.layout == 0 && d.src[1] <= 4 && d.wei.size() == d.src.size());  // few channels
  return plain ? memory::desc(dims, dt::f32, d.src_tag) : any_md(dims);
}

// Winograd F(4x4, 3x3) needs a fifth of the multiplications of a direct 3x3 convolution
// and wins on every pass once both sides have 16 channels or more (1 thread, 32x64->64
// 56x56 chunks of 8: forward 7.9 -> 3.4 ms, data gradient 7.6 -> 3.2 ms, weight gradient
// 8.0 -> 3.9 ms; 128x32->64 14x14 forward 2.0 -> 1.3 ms at 2 threads; bench/RESULTS.md).
// oneDNN's own convolution_auto picks it for fewer of these cases.
bool winograd_fits(const ConvGeometry& g) {
  bool square3 = g.in[0] == 1 && g.kernel[0] == 1 && g.kernel[1] == 3 && g.kernel[2] == 3;
  bool unit = g.stride[1] == 1 && g.stride[2] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1;
  return square3 && unit && g.groups == 1 && g.in_channels >= 16 && g.out_channels >= 16;
}

// Scratchpads are passed at each execution (from Tessera's allocator), so one cached
// primitive can run on several threads at once, as the weight gradient's chunks do.
dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Dims& d, bool with_bias,
                                                     dnnl::algorithm algorithm) {
  const auto kind = dnnl::prop_kind::forward_training;
  auto desc = with_bias ? dnnl::convolution_forward::desc(
                              kind, algorithm, act_md(d, d.src), any_md(d.wei), any_md(d.bias),
                              act_md(d, d.dst), d.strides, d.dilates, d.pad_l, d.pad_r)
                        : dnnl::convolution_forward::desc(kind, algorithm, act_md(d, d.src),
                                                          any_md(d.wei), act_md(d, d.dst),
                                                          d.strides, d.dilates, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(), engine());
}

// One array argument of a plan: the caller's plain layout, the layout the primitive wants,
// and the reorder between them when they differ.
struct PlanArg {
  int arg = 0;
  memory::desc user, inner;
  dnnl::reorder to_inner, to_user;
  bool reordered = false;
};

PlanArg plan_arg(int arg, const memory::desc& want, const memory::dims& dims, tag t, bool input) {
  PlanArg a;
  a.arg = arg;
  a.user = memory::desc(dims, dt::f32, t);
  a.inner = want;
  a.reordered = want != a.user;
  if (a.reordered) {
    if (input) {
      a.to_inner = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), a.user, engine(), want));
    } else {
      a.to_user = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), want, engine(), a.user));
    }
  }
  return a;
}

// A convolution primitive with its argument layouts and reorders. Creating one costs
// tens of microseconds (oneDNN walks its implementations), so plans are cached per
// geometry, pass and thread count (oneDNN fixes its work split when it creates one).
struct Plan {
  dnnl::primitive conv;
  memory::desc scratchpad;
  std::vector<PlanArg> args;  // in the order of the pointers given to run()
  uint64_t id = 0;            // unique per plan made (run_plan's per-thread bindings)
  size_t scratch_bytes = 0;   // reordered arguments and the scratchpad
};

enum class Pass { forward, forward_bias, backward_data, backward_weights };

struct PlanKey {
  static constexpr int kFields = 6 + 3 * 6;  // batch, channels, groups, algorithm, layout; 6/dim
  Pass pass;
  int threads;
  int64_t g[kFields];
  bool operator==(const PlanKey& o) const {
    return pass == o.pass && threads == o.threads && std::equal(g, g + kFields, o.g);
  }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = static_cast<size_t>(k.pass) * 31 + static_cast<size_t>(k.threads);
    for (int64_t v : k.g) h = h * 1000003u ^ static_cast<size_t>(v);
    return h;
  }
};

PlanKey plan_key(const ConvGeometry& g, Pass pass) {
  PlanKey k{pass, omp_get_max_threads(), {}};
  int64_t* o = k.g;
  *o++ = g.batch;
  *o++ = g.in_channels;
  *o++ = g.out_channels;
  *o++ = g.groups;
  *o++ = g.algorithm;
  *o++ = g.layout;
  for (int i = 0; i < 3; ++i) {
    *o++ = g.in[i];
    *o++ = g.out[i];
    *o++ = g.kernel[i];
    *o++ = g.stride[i];
    *o++ = g.pad[i];
    *o++ = g.dilation[i];
  }
  return k;
}

Plan make_plan(const ConvGeometry& g, Pass pass, dnnl::algorithm algorithm) {
  Dims d = to_dims(g);
  Plan plan;
  bool bias = pass == Pass::forward_bias;
  auto hint = forward_pd(d, bias, algorithm);
  if (pass == Pass::forward || pass == Pass::forward_bias) {
    // forward_training, not forward_inference: oneDNN then picks 16-channel blocked
    // kernels, whose reorders from NCHW cost a fraction of those into NHWC (depthwise
    // 1x32 112x112: 141 us against 283 us; 128x32->64 14x14: 4.3 ms against 5.7 ms).
    plan.conv = dnnl::convolution_forward(hint);
    plan.scratchpad = hint.scratchpad_desc();
    plan.args = {plan_arg(DNNL_ARG_SRC, hint.src_desc(), d.src, d.src_tag, true),
                 plan_arg(DNNL_ARG_WEIGHTS, hint.weights_desc(), d.wei, d.wei_tag, true),
                 plan_arg(DNNL_ARG_DST, hint.dst_desc(), d.dst, d.src_tag, false)};
    if (bias) plan.args.push_back(plan_arg(DNNL_ARG_BIAS, hint.bias_desc(), d.bias, tag::x, true));
  } else if (pass == Pass::backward_data) {
    auto desc = dnnl::convolution_backward_data::desc(algorithm, any_md(d.src), any_md(d.wei),
                                                      any_md(d.dst), d.strides, d.dilates, d.pad_l,
                                                      d.pad_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    plan.conv = dnnl::convolution_backward_data(pd);
    plan.scratchpad = pd.scratchpad_desc();
    plan.args = {plan_arg(DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), d.dst, d.src_tag, true),
                 plan_arg(DNNL_ARG_WEIGHTS, pd.weights_desc(), d.wei, d.wei_tag, true),
                 plan_arg(DNNL_ARG_DIFF_SRC, pd.diff_src_desc(), d.src, d.src_tag, false)};
  } else {
    auto desc = dnnl::convolution_backward_weights::desc(algorithm, act_md(d, d.src), any_md(d.wei),
                                                         act_md(d, d.dst), d.strides, d.dilates,
                                                         d.pad_l, d.pad_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(), engine(), hint);
    plan.conv = dnnl::convolution_backward_weights(pd);
    plan.scratchpad = pd.scratchpad_desc();
    plan.args = {plan_arg(DNNL_ARG_SRC, pd.src_desc(), d.src, d.src_tag, true),
                 plan_arg(DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), d.dst, d.src_tag, true),
                 plan_arg(DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc(), d.wei, d.wei_tag, false)};
  }
  static std::atomic<uint64_t> next_id{1};
  plan.id = next_id++;
  plan.scratch_bytes = plan.scratchpad.get_size();
  for (const PlanArg& a : plan.args) plan.scratch_bytes += a.reordered ? a.inner.get_size() : 0;
  return plan;
}

// The cached plan, or nullptr when oneDNN has no implementation for the geometry.
std::shared_ptr<const Plan> find_plan(const ConvGeometry& g, Pass pass) {
  constexpr size_t kMaxPlans = 256;  // a network has a few dozen; the cap bounds odd workloads
  static std::mutex mutex;
  // Never destroyed: cached primitives must not be released after oneDNN's own statics.
  static auto& plans = *new std::unordered_map<PlanKey, std::shared_ptr<const Plan>, PlanKeyHash>;
  PlanKey key = plan_key(g, pass);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  std::shared_ptr<const Plan> plan;
  for (auto algorithm :
       {dnnl::algorithm::convolution_winograd, dnnl::algorithm::convolution_direct}) {
    bool winograd = algorithm == dnnl::algorithm::convolution_winograd;
    if (winograd && (!winograd_fits(g) || g.algorithm == 1)) continue;
    try {
      plan = std::make_shared<const Plan>(make_plan(g, pass, algorithm));
      break;
    } catch (const dnnl::error& e) {
      // oneDNN has no kernel for this algorithm here: try the next one, and remember a
      // geometry no algorithm covers as nullptr. Any other failure (out of memory) is
      // passed on and not remembered.
      if (e.status != dnnl_unimplemented) throw;
    }
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (plans.size() >= kMaxPlans) plans.clear();
  plans.emplace(key, plan);
  return plan;
}

// ------------------------------------------------------------- shared blocked copies
// While a SharedConvInput is open over an array, the first plan that reorders the whole
// array into a blocked layout keeps that copy, and later plans that want the array, or a
// batch slice of it, in the same layout read the copy instead of reordering again.
struct SharedCopy {
  const char* user;
  size_t bytes;
  std::shared_ptr<Scratch> blocked;  // made by the first plan, in layout `inner`
  memory::desc inner;
};

std::mutex shared_mutex;
std::vector<SharedCopy*> shared_copies;  // open ones, under shared_mutex
std::atomic<int> shared_open{0};         // their number, read without the lock

// Elements from the start of `full`, a blocked layout of [N, ...], to image n0, when `part`
// is the same layout of images [n0, n0 + part's N); -1 otherwise. The batch must be the
// outermost, unblocked dimension of both.
int64_t batch_slice_offset(const memory::desc& full, const memory::desc& part, int64_t n0) {
  const dnnl_memory_desc_t &f = full.data, &p = part.data;
  if (f.format_kind != dnnl_blocked || p.format_kind != dnnl_blocked || f.ndims != p.ndims ||
      f.data_type != p.data_type || f.offset0 != 0 || p.offset0 != 0) {
    return -1;
  }
  const dnnl_blocking_desc_t &fb = f.format_desc.blocking, &pb = p.format_desc.blocking;
  if (fb.inner_nblks != pb.inner_nblks) return -1;
  for (int i = 0; i < fb.inner_nblks; ++i) {
    if (fb.inner_blks[i] != pb.inner_blks[i] || fb.inner_idxs[i] != pb.inner_idxs[i] ||
        fb.inner_idxs[i] == 0) {
      return -1;
    }
  }
  int64_t image = 1;
  for (int d = 1; d < f.ndims; ++d) {
    if (f.dims[d] != p.dims[d] || f.padded_dims[d] != p.padded_dims[d] ||
        f.padded_offsets[d] != 0 || p.padded_offsets[d] != 0 || fb.strides[d] != pb.strides[d]) {
      return -1;
    }
    image *= f.padded_dims[d];
  }
  const bool outer = fb.strides[0] == image && pb.strides[0] == image &&
                     f.padded_dims[0] == f.dims[0] && p.padded_dims[0] == p.dims[0];
  if (!outer || n0 < 0 || n0 + p.dims[0] > f.dims[0]) return -1;
  return n0 * image;
}

// The shared blocked copy of plan argument `a` read from `user`, or nullptr when no open
// SharedConvInput covers it. The first plan to ask for a whole array makes the copy;
// `keep` holds it for the caller's execution, whatever closes the SharedConvInput.
void* shared_blocked(const PlanArg& a, const void* user, dnnl::stream& s,
                     std::shared_ptr<Scratch>& keep) {
  if (shared_open.load(std::memory_order_relaxed) == 0) return nullptr;
  const char* p = static_cast<const char*>(user);
  std::lock_guard<std::mutex> lock(shared_mutex);
  for (SharedCopy* c : shared_copies) {
    if (p < c->user || p >= c->user + c->bytes) continue;
    if (!c->blocked) {
      if (p != c->user || a.user.get_size() != c->bytes) return nullptr;
      auto copy = std::make_shared<Scratch>(a.inner.get_size());
      memory from(a.user, engine(), const_cast<void*>(user)), to(a.inner, engine(), copy->ptr);
      a.to_inner.execute(s, from, to);
      s.wait();
      c->blocked = copy;
      c->inner = a.inner;
      keep = std::move(copy);
      return keep->ptr;
    }
    const int64_t image_bytes = static_cast<int64_t>(c->bytes) / c->inner.data.dims[0];
    if (image_bytes == 0 || (p - c->user) % image_bytes != 0) return nullptr;
    const int64_t at = batch_slice_offset(c->inner, a.inner, (p - c->user) / image_bytes);
    if (at < 0) return nullptr;
    keep = c->blocked;
    return static_cast<char*>(keep->ptr) + at * static_cast<int64_t>(sizeof(float));
  }
  return nullptr;
}

constexpr size_t kMaxPlanArgs = 4;  // source, weights, destination, bias

// A plan argument already in (input) or wanted in (output) the primitive's own layout at
// `inner`, instead of the caller's plain array: fused ops that read or write oneDNN's
// blocked layout themselves. `index` is the argument's position in Plan::args.
struct Given {
  int index = -1;
  void* inner = nullptr;
};

// One thread's oneDNN objects for a small plan: memory objects rebound to the caller's
// arrays at each call, the reordered arguments' buffers and the scratchpad kept, and the
// argument lists of the C API prebuilt (the C++ API builds a vector per execute), so that a
// call allocates nothing: the graph executor's steady state (batch-1 inference). Larger
// plans take their buffers from the caching allocator per call, so that other plans reuse
// them.
constexpr size_t kBoundScratchBytes = size_t{4} << 20;
struct Bound {
  std::vector<memory> user, inner;  // per plan argument; inner only where reordered
  std::vector<std::unique_ptr<Scratch>> buffers;
  std::vector<void*> own;      // per plan argument: inner's own buffer (or null)
  std::vector<char> borrowed;  // per plan argument: inner points at a shared copy
  std::vector<dnnl_exec_arg_t> conv_args;
  std::vector<std::array<dnnl_exec_arg_t, 2>> reorder_args;  // per plan argument
};

Bound bind(const Plan& plan) {
  Bound b;
  for (const PlanArg& a : plan.args) {
    b.user.emplace_back(a.user, engine(), static_cast<void*>(DNNL_MEMORY_NONE));
    if (a.reordered) {
      b.buffers.push_back(std::make_unique<Scratch>(a.inner.get_size()));
      b.inner.emplace_back(a.inner, engine(), b.buffers.back()->ptr);
      b.own.push_back(b.buffers.back()->ptr);
    } else {
      b.inner.emplace_back();
      b.own.push_back(nullptr);
    }
    b.borrowed.push_back(0);
    const memory& used = a.reordered ? b.inner.back() : b.user.back();
    b.conv_args.push_back({a.arg, used.get()});
    b.reorder_args.emplace_back();
    if (a.reordered) {  // inputs from the caller's layout, outputs back to it
      const bool in = static_cast<bool>(a.to_inner);
      b.reorder_args.back() = {dnnl_exec_arg_t{DNNL_ARG_FROM, (in ? b.user : b.inner).back().get()},
                               dnnl_exec_arg_t{DNNL_ARG_TO, (in ? b.inner : b.user).back().get()}};
    }
  }
  b.buffers.push_back(std::make_unique<Scratch>(plan.scratchpad.get_size()));
  b.inner.emplace_back(plan.scratchpad, engine(), b.buffers.back()->ptr);
  b.conv_args.push_back({DNNL_ARG_SCRATCHPAD, b.inner.back().get()});
  return b;
}

void check_dnnl(dnnl_status_t status) {
  if (status != dnnl_success) throw dnnl::error(status, "executing a convolution plan");
}

void run_bound(const Plan& plan, std::initializer_list<const void*> data, Given given) {
  thread_local dnnl::stream s(engine());
  thread_local std::unordered_map<uint64_t, Bound> bound;
  auto it = bound.find(plan.id);
  if (it == bound.end()) {
    if (bound.size() >= 32) bound.clear();  // plans of shapes no longer run
    it = bound.emplace(plan.id, bind(plan)).first;
  }
  Bound& b = it->second;
  auto ptr = data.begin();
  for (memory& m : b.user) m.set_data_handle(const_cast<void*>(*ptr++));
  // Where each reordered argument's inner array is: given, a shared copy or its own buffer.
  std::array<std::shared_ptr<Scratch>, kMaxPlanArgs> keep;  // shared copies read now
  ptr = data.begin();
  for (size_t i = 0; i < plan.args.size(); ++i, ++ptr) {
    const PlanArg& a = plan.args[i];
    if (!a.reordered) continue;
    void* elsewhere = given.index == static_cast<int>(i) ? given.inner
                      : a.to_inner                       ? shared_blocked(a, *ptr, s, keep[i])
                                                         : nullptr;
    if (elsewhere) {
      b.borrowed[i] = 1;  // first: if this throws, the next call still restores its own
      b.inner[i].set_data_handle(elsewhere);
    } else if (b.borrowed[i]) {
      b.inner[i].set_data_handle(b.own[i]);
      b.borrowed[i] = 0;
    }
    if (a.to_inner && !elsewhere) {
      check_dnnl(dnnl_primitive_execute(a.to_inner.get(), s.get(), 2, b.reorder_args[i].data()));
    }
  }
  check_dnnl(dnnl_primitive_execute(plan.conv.get(), s.get(), static_cast<int>(b.conv_args.size()),
                                    b.conv_args.data()));
  for (size_t i = 0; i < plan.args.size(); ++i) {
    if (plan.args[i].reordered && !plan.args[i].to_inner && !b.borrowed[i]) {
      check_dnnl(
          dnnl_primitive_execute(plan.args[i].to_user.get(), s.get(), 2, b.reorder_args[i].data()));
    }
  }
  s.wait();
}

// Runs the plan on the caller's arrays (plain layouts, in plan.args order); the argument
// `given` names is already (input) or wanted (output) in the primitive's own layout there.
void run_plan(const Plan& plan, std::initializer_list<const void*> data, Given given = {}) {
  if (plan.scratch_bytes <= kBoundScratchBytes) return run_bound(plan, data, given);
  dnnl::stream s(engine());
  std::vector<std::unique_ptr<Scratch>> scratch;
  std::unordered_map<int, memory> args;
  struct Output {
    const PlanArg* arg;
    memory inner, user;
  };
  std::vector<Output> outputs;  // written in the primitive's layout, reordered afterwards
  std::array<std::shared_ptr<Scratch>, kMaxPlanArgs> keep;  // shared copies read now
  auto ptr = data.begin();
  for (size_t i = 0; i < plan.args.size(); ++i) {
    const PlanArg& a = plan.args[i];
    memory user(a.user, engine(), const_cast<void*>(*ptr++));
    if (!a.reordered) {
      args[a.arg] = user;
      continue;
    }
    void* elsewhere = given.index == static_cast<int>(i) ? given.inner
                      : a.to_inner ? shared_blocked(a, user.get_data_handle(), s, keep[i])
                                   : nullptr;
    if (elsewhere) {
      args[a.arg] = memory(a.inner, engine(), elsewhere);
      continue;
    }
    scratch.push_back(std::make_unique<Scratch>(a.inner.get_size()));
    memory inner(a.inner, engine(), scratch.back()->ptr);
    if (a.to_inner) {
      a.to_inner.execute(s, user, inner);
    } else {
      outputs.push_back({&a, inner, user});
    }
    args[a.arg] = inner;
  }
  Scratch pad(plan.scratchpad.get_size());
  args[DNNL_ARG_SCRATCHPAD] = memory(plan.scratchpad, engine(), pad.ptr);
  plan.conv.execute(s, args);
  for (Output& o : outputs) o.arg->to_user.execute(s, o.inner, o.user);
  s.wait();
}

// Runs the cached plan for (g, pass); false when oneDNN cannot do it (the caller then
// takes Tessera's im2col path), including oneDNN failures at run time.
bool run(const ConvGeometry& g, Pass pass, std::initializer_list<const void*> data,
         Given given = {}) {
  try {
    std::shared_ptr<const Plan> plan = find_plan(g, pass);
    if (!plan) return false;
    run_plan(*plan, data, given);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

// One OpenMP thread for the calling thread while alive (the weight gradient's chunks).
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

// The weight gradient in kWeightGradChunks batch chunks (see onednn_conv_backward_weight),
// reading gy, or when gy16 is given the output gradient in the 16-channel blocked layout.
bool weight_grad_chunks(const ConvGeometry& g, const float* x, const float* gy, const float* gy16,
                        float* gw);

memory::desc blocked16(const memory::dims& dims) {
  return memory::desc(dims, dt::f32, tag::aBcd16b);
}

// Whether argument `index` of the plan for (g, pass) is reordered to the blocked layout.
bool arg_is_blocked16(const ConvGeometry& g, Pass pass, int index) {
  std::shared_ptr<const Plan> plan = find_plan(g, pass);
  if (!plan) return false;
  const PlanArg& a = plan->args[static_cast<size_t>(index)];
  return a.reordered && a.user.dims().size() == 4 && a.inner == blocked16(a.user.dims());
}

// Elements of one image of [N, C, H, W] in the blocked layout (channels padded to 16).
int64_t blocked16_image(int64_t channels, int64_t plane) {
  return (channels + 15) / 16 * 16 * plane;
}

}  // namespace

bool onednn_blocked16_fits(const ConvGeometry& g, bool bias) {
  const bool two_d = g.in[0] == 1 && g.kernel[0] == 1 && g.out[0] == 1 && g.pad[0] == 0;
  if (!two_d || g.batch == 0) return false;
  try {
    if (!arg_is_blocked16(g, bias ? Pass::forward_bias : Pass::forward, 2) ||
        !arg_is_blocked16(g, Pass::backward_data, 0)) {
      return false;
    }
    OneThread one;  // the chunks' plans are made for one thread
    const int64_t chunks = std::min<int64_t>(g.batch, kWeightGradChunks);
    for (int64_t c = 0; c < chunks; ++c) {
      ConvGeometry part = g;
      part.batch = g.batch * (c + 1) / chunks - g.batch * c / chunks;
      if (!arg_is_blocked16(part, Pass::backward_weights, 1)) return false;
    }
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

bool onednn_conv_forward_to_blocked16(const ConvGeometry& g, const float* x, const float* w,
                                      const float* b, float* y16) {
  if (b) return run(g, Pass::forward_bias, {x, w, nullptr, b}, Given{2, y16});
  return run(g, Pass::forward, {x, w, nullptr}, Given{2, y16});
}

bool onednn_conv_backward_from_blocked16(const ConvGeometry& g, const float* x, const float* w,
                                         const float* gy16, float* gx, float* gw) {
  if (gx && !run(g, Pass::backward_data, {nullptr, w, gx}, Given{0, const_cast<float*>(gy16)})) {
    return false;
  }
  return weight_grad_chunks(g, x, nullptr, gy16, gw);
}

void onednn_blocked16_reorder(const int64_t dims[4], bool u8, const void* from, void* to,
                              bool to_blocked) {
  const memory::dims d(dims, dims + 4);
  const dt type = u8 ? dt::u8 : dt::f32;
  const memory::desc plain(d, type, tag::nchw), blocked(d, type, tag::aBcd16b);
  const memory::desc &src = to_blocked ? plain : blocked, &dst = to_blocked ? blocked : plain;
  // oneDNN's primitive cache makes the repeated creation cheap.
  dnnl::reorder r(dnnl::reorder::primitive_desc(engine(), src, engine(), dst));
  dnnl::stream s(engine());
  memory a(src, engine(), const_cast<void*>(from)), b(dst, engine(), to);
  r.execute(s, a, b);
  s.wait();
}

bool onednn_conv_forward(const ConvGeometry& g, const float* x, const float* w, const float* b,
                         float* y) {
  if (b) return run(g, Pass::forward_bias, {x, w, y, b});
  return run(g, Pass::forward, {x, w, y});
}

bool onednn_conv_backward_data(const ConvGeometry& g, const float* gy, const float* w, float* gx) {
  return run(g, Pass::backward_data, {gy, w, gx});
}

bool onednn_conv_backward_weight(const ConvGeometry& g, const float* x, const float* gy,
                                 float* gw) {
  return weight_grad_chunks(g, x, gy, nullptr, gw);
}

namespace {
bool weight_grad_chunks(const ConvGeometry& g, const float* x, const float* gy, const float* gy16,
                        float* gw) {
  // oneDNN splits its batch reduction by thread count, so its result changes with the
  // number of threads. For the same bits on any thread count the batch is cut into a fixed
  // number of chunks, each reduced on one thread, and the chunks are summed in order.
  const int64_t chunks = std::min<int64_t>(g.batch, kWeightGradChunks);
  const int64_t wsize = g.out_channels * (g.in_channels / g.groups) * g.kernel_volume();
  if (chunks == 0) {  // an empty batch contributes nothing
    std::fill(gw, gw + wsize, 0.0f);
    return true;
  }
  std::vector<float> partial(static_cast<size_t>(chunks * wsize));
  std::vector<char> ok(chunks, 0);
  parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    OneThread one;
    for (int64_t c = lo; c < hi; ++c) {
      int64_t first = g.batch * c / chunks, last = g.batch * (c + 1) / chunks;
      ConvGeometry part = g;
      part.batch = last - first;
      // No exception may leave an OpenMP region: a failed chunk (out of memory) sends the
      // whole gradient to the im2col path, which reports it on the calling thread.
      try {
        const float* x_part = x + first * g.in_channels * g.in_plane();
        float* gw_part = partial.data() + c * wsize;
        if (gy16) {
          float* gy16_part =
              const_cast<float*>(gy16) + first * blocked16_image(g.out_channels, g.out_plane());
          ok[c] =
              run(part, Pass::backward_weights, {x_part, nullptr, gw_part}, Given{1, gy16_part});
        } else {
          ok[c] = run(part, Pass::backward_weights,
                      {x_part, gy + first * g.out_channels * g.out_plane(), gw_part});
        }
      } catch (...) {
        ok[c] = 0;
      }
    }
  });
  for (char v : ok) {
    if (!v) return false;
  }
  for (int64_t i = 0; i < wsize; ++i) {
    float acc = partial[i];
    for (int64_t c = 1; c < chunks; ++c) acc += partial[c * wsize + i];
    gw[i] = acc;
  }
  return true;
}
}  // namespace

SharedConvInput::SharedConvInput(const void* data, size_t bytes) {
  if (bytes == 0) return;
  auto* copy = new SharedCopy{static_cast<const char*>(data), bytes, nullptr, {}};
  std::lock_guard<std::mutex> lock(shared_mutex);
  shared_copies.push_back(copy);
  shared_open.fetch_add(1, std::memory_order_relaxed);
  entry_ = copy;
}

SharedConvInput::~SharedConvInput() {
  if (!entry_) return;
  auto* copy = static_cast<SharedCopy*>(entry_);
  {
    std::lock_guard<std::mutex> lock(shared_mutex);
    std::erase(shared_copies, copy);
    shared_open.fetch_sub(1, std::memory_order_relaxed);
  }
  delete copy;
}

}  // namespace tessera::cpu
