// The lite interpreter: prepares each operator once, plans one arena for every activation
// (tensors whose lifetimes do not overlap share memory), then runs the kernels in order.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "kernels/kernel.h"
#include "model.h"

namespace tessera::lite {
namespace {

constexpr size_t kAlign = 64;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct Block {
  size_t bytes;
  int first, last;  // operator steps during which it is live (inclusive)
  size_t* offset;
};

// Greedy by size: each block goes at the lowest offset that no block live at the same time
// occupies. Returns the arena size.
size_t place(std::vector<Block>& blocks) {
  std::vector<Block*> order;
  for (Block& b : blocks) order.push_back(&b);
  std::stable_sort(order.begin(), order.end(),
                   [](const Block* a, const Block* b) { return a->bytes > b->bytes; });
  std::vector<Block*> placed;
  size_t total = 0;
  for (Block* b : order) {
    std::vector<std::pair<size_t, size_t>> taken;  // [offset, end) of overlapping blocks
    for (Block* p : placed) {
      if (p->first <= b->last && b->first <= p->last)
        taken.push_back({*p->offset, *p->offset + p->bytes});
    }
    std::sort(taken.begin(), taken.end());
    size_t at = 0;
    for (auto [lo, hi] : taken) {
      if (at + b->bytes <= lo) break;
      at = std::max(at, align_up(hi));
    }
    *b->offset = at;
    total = std::max(total, at + b->bytes);
    placed.push_back(b);
  }
  return align_up(total);
}

}  // namespace

struct Interpreter::State {
  const ModelData& m;
  std::vector<OpContext> ops;
  std::vector<size_t> offsets;          // per tensor, into the arena (activations)
  std::vector<size_t> scratch_offsets;  // per operator
  std::vector<size_t> scratch_bytes;
  std::vector<size_t> persistent_offsets;  // per operator
  size_t arena_bytes = 0;
  uint8_t* arena = nullptr;
  void* owned = nullptr;
  bool allocated = false;
  bool profiling = false;
  std::vector<double> seconds;

  explicit State(const ModelData& model) : m(model) {}
  ~State() { std::free(owned); }

  uint8_t* tensor_data(int t) const {
    const TensorDesc& d = m.tensors[static_cast<size_t>(t)];
    return d.constant ? const_cast<uint8_t*>(d.constant) : arena + offsets[static_cast<size_t>(t)];
  }
};

Interpreter::Interpreter(const Model& model) : state_(std::make_unique<State>(model.data())) {}
Interpreter::~Interpreter() = default;

Result Interpreter::allocate(void* arena, size_t arena_bytes) {
  State& s = *state_;
  const ModelData& m = s.m;
  s.allocated = false;
  s.ops.assign(m.ops.size(), OpContext{});
  s.scratch_bytes.assign(m.ops.size(), 0);
  s.scratch_offsets.assign(m.ops.size(), 0);
  s.persistent_offsets.assign(m.ops.size(), 0);
  for (size_t k = 0; k < m.ops.size(); ++k) {
    OpContext& ctx = s.ops[k];
    ctx.index = static_cast<int>(k);
    ctx.desc = &m.ops[k];
    for (int i : m.ops[k].inputs)
      ctx.in.push_back(i < 0 ? nullptr : &m.tensors[static_cast<size_t>(i)]);
    for (int o : m.ops[k].outputs) ctx.out.push_back(&m.tensors[static_cast<size_t>(o)]);
    ctx.in_data.assign(ctx.in.size(), nullptr);
    ctx.out_data.assign(ctx.out.size(), nullptr);
    if (Result r = kernel_for(m.ops[k].code).prepare(ctx, &s.scratch_bytes[k]); !r.ok()) return r;
    ctx.writes_nothing = std::all_of(ctx.out.begin(), ctx.out.end(),
                                     [](const TensorDesc* t) { return t->numel == 0; });
  }
  // Lifetimes: from the step that writes a tensor (inputs: before the first) to the last
  // that reads it (outputs: after the last).
  const int steps = static_cast<int>(m.ops.size());
  std::vector<int> first(m.tensors.size(), -2), last(m.tensors.size(), -2);
  for (int i : m.inputs) first[static_cast<size_t>(i)] = last[static_cast<size_t>(i)] = -1;
  for (int k = 0; k < steps; ++k) {
    for (int i : m.ops[static_cast<size_t>(k)].inputs) {
      if (i >= 0) last[static_cast<size_t>(i)] = std::max(last[static_cast<size_t>(i)], k);
    }
    for (int o : m.ops[static_cast<size_t>(k)].outputs) {
      first[static_cast<size_t>(o)] = k;
      last[static_cast<size_t>(o)] = std::max(last[static_cast<size_t>(o)], k);
    }
  }
  for (int o : m.outputs) last[static_cast<size_t>(o)] = steps;
  s.offsets.assign(m.tensors.size(), 0);
  std::vector<Block> blocks;
  for (size_t t = 0; t < m.tensors.size(); ++t) {
    if (!m.tensors[t].constant && first[t] != -2) {
      blocks.push_back({m.tensors[t].bytes, first[t], last[t], &s.offsets[t]});
    }
  }
  for (int k = 0; k < steps; ++k) {
    if (s.scratch_bytes[static_cast<size_t>(k)] > 0) {
      blocks.push_back({s.scratch_bytes[static_cast<size_t>(k)], k, k,
                        &s.scratch_offsets[static_cast<size_t>(k)]});
    }
  }
  for (int k = 0; k < steps; ++k) {  // packed weights live through every step
    if (s.ops[static_cast<size_t>(k)].persistent_bytes > 0) {
      blocks.push_back({s.ops[static_cast<size_t>(k)].persistent_bytes, -1, steps,
                        &s.persistent_offsets[static_cast<size_t>(k)]});
    }
  }
  s.arena_bytes = place(blocks);
  if (arena) {
    if (arena_bytes < s.arena_bytes || reinterpret_cast<uintptr_t>(arena) % kAlign != 0) {
      return make_result(Status::invalid_argument,
                         "allocate: the arena must be 64-byte aligned and hold " +
                             std::to_string(s.arena_bytes) + " bytes, got " +
                             std::to_string(arena_bytes));
    }
    s.arena = static_cast<uint8_t*>(arena);
  } else {
    std::free(s.owned);
    s.owned = std::aligned_alloc(kAlign, std::max(s.arena_bytes, kAlign));
    if (!s.owned) return make_result(Status::invalid_argument, "allocate: out of memory");
    s.arena = static_cast<uint8_t*>(s.owned);
  }
  for (size_t k = 0; k < s.ops.size(); ++k) {
    OpContext& ctx = s.ops[k];
    for (size_t i = 0; i < ctx.in.size(); ++i) {
      if (ctx.in[i]) ctx.in_data[i] = s.tensor_data(m.ops[k].inputs[i]);
    }
    for (size_t o = 0; o < ctx.out.size(); ++o)
      ctx.out_data[o] = s.tensor_data(m.ops[k].outputs[o]);
    ctx.scratch = s.scratch_bytes[k] ? s.arena + s.scratch_offsets[k] : nullptr;
    ctx.persistent = ctx.persistent_bytes ? s.arena + s.persistent_offsets[k] : nullptr;
    if (const Kernel& kernel = kernel_for(m.ops[k].code); kernel.init) kernel.init(ctx);
  }
  s.seconds.assign(s.ops.size(), 0.0);
  s.allocated = true;
  return {};
}

size_t Interpreter::arena_bytes() const { return state_->arena_bytes; }
size_t Interpreter::num_inputs() const { return state_->m.inputs.size(); }
size_t Interpreter::num_outputs() const { return state_->m.outputs.size(); }

static TensorInfo info_of(const TensorDesc& d) {
  TensorInfo info;
  info.name = d.name;
  info.dtype = d.dtype;
  info.shape = d.shape;
  info.bytes = d.bytes;
  if (d.scales.size() == 1) {
    info.scale = d.scales[0];
    info.zero_point = d.zero_points[0];
  }
  return info;
}

TensorInfo Interpreter::input(size_t i) const {
  const ModelData& m = state_->m;
  return i < m.inputs.size() ? info_of(m.tensors[static_cast<size_t>(m.inputs[i])]) : TensorInfo{};
}

TensorInfo Interpreter::output(size_t i) const {
  const ModelData& m = state_->m;
  return i < m.outputs.size() ? info_of(m.tensors[static_cast<size_t>(m.outputs[i])])
                              : TensorInfo{};
}

void* Interpreter::input_data(size_t i) {
  const State& s = *state_;
  if (!s.allocated || i >= s.m.inputs.size()) return nullptr;
  return s.tensor_data(s.m.inputs[i]);
}

const void* Interpreter::output_data(size_t i) const {
  const State& s = *state_;
  if (!s.allocated || i >= s.m.outputs.size()) return nullptr;
  return s.tensor_data(s.m.outputs[i]);
}

Result Interpreter::set_input(size_t i, const void* data, size_t bytes) {
  const State& s = *state_;
  if (!s.allocated) return make_result(Status::not_allocated, "set_input: call allocate() first");
  if (i >= s.m.inputs.size()) {
    return make_result(Status::invalid_argument, "set_input: the model has " +
                                                     std::to_string(s.m.inputs.size()) +
                                                     " inputs, got index " + std::to_string(i));
  }
  const TensorDesc& d = s.m.tensors[static_cast<size_t>(s.m.inputs[i])];
  if (bytes != d.bytes || (!data && bytes)) {
    return make_result(Status::invalid_argument, "set_input: input " + std::to_string(i) +
                                                     " takes " + std::to_string(d.bytes) +
                                                     " bytes, got " + std::to_string(bytes));
  }
  if (bytes) std::memcpy(s.tensor_data(s.m.inputs[i]), data, bytes);
  return {};
}

Result Interpreter::invoke() {
  State& s = *state_;
  if (!s.allocated) return make_result(Status::not_allocated, "invoke: call allocate() first");
  for (size_t k = 0; k < s.ops.size(); ++k) {
    const Kernel& kernel = kernel_for(s.ops[k].desc->code);
    if (s.ops[k].writes_nothing) continue;
    if (!s.profiling) {
      kernel.eval(s.ops[k]);
      continue;
    }
    auto start = std::chrono::steady_clock::now();
    kernel.eval(s.ops[k]);
    s.seconds[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return {};
}

void Interpreter::set_profiling(bool on) { state_->profiling = on; }
std::span<const double> Interpreter::operator_seconds() const { return state_->seconds; }

std::string_view Interpreter::operator_name(size_t op) const {
  const ModelData& m = state_->m;
  return op < m.ops.size() ? schema::EnumNameOpCode(m.ops[op].code) : "";
}

}  // namespace tessera::lite
