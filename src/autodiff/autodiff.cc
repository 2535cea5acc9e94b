// The autodiff graph (one OpNode per recorded op call, one AccumulateGrad per leaf)
// and the engine that runs it in dependency order.
#include "tessera/autodiff/autodiff.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/shape.h"

namespace tessera {

static thread_local bool t_grad_enabled = true;
bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

namespace autodiff {
namespace {

const char* kFreedMessage =
    "trying to backward through the graph a second time (or to use saved tensors after they "
    "were freed); pass retain_graph=true to the first backward";

// A tensor saved for backward, with the storage version it had when saved.
struct SavedTensor {
  Tensor tensor;
  uint64_t version = 0;

  void save(const Tensor& t) {
    tensor = t;
    version = t.is_symbolic() ? 0 : t.storage()->version();  // traced tensors have no storage
  }
  void check_version(const char* op) const {
    if (tensor.is_symbolic()) return;
    check(tensor.storage()->version() == version, op,
          "a tensor saved for the gradient was modified by an in-place op (version ", version,
          " became ", tensor.storage()->version(), "); use the out-of-place form");
  }
};

class OpNode : public Node {
 public:
  OpNode(const OpDef& def, const Attrs& attrs) : def_(def), attrs_(attrs) {}

  std::string name() const override { return def_.name; }

  void save(std::span<const Tensor> inputs, std::span<Tensor> outputs) {
    input_metas_.reserve(inputs.size());
    for (const Tensor& t : inputs) input_metas_.push_back({t.shape(), t.dtype()});
    if (def_.saves & kSaveInputs) {
      inputs_.resize(inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i) inputs_[i].save(inputs[i]);
    }
    if (def_.saves & kSaveOutputs) {
      // Saved without grad_fn: pointing back at this node would make a cycle.
      outputs_.resize(outputs.size());
      for (size_t i = 0; i < outputs.size(); ++i) outputs_[i].save(outputs[i].detach());
    }
  }

  TensorList apply(TensorList&& grad_outputs, bool create_graph) override {
    check(!released_, def_.name, kFreedMessage);
    check(def_.grad != nullptr, def_.name, "this op is not differentiable");
    TensorList inputs, outputs;
    for (const SavedTensor& s : inputs_) {
      s.check_version(def_.name);
      inputs.push_back(s.tensor);
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
      outputs_[i].check_version(def_.name);
      Tensor out = outputs_[i].tensor;
      if (create_graph) {  // re-attach the output to this node so second order sees it
        Tensor attached(std::make_shared<TensorImpl>(*out.impl()));
        attached.impl()->grad_fn = shared_from_this();
        attached.impl()->output_nr = static_cast<int>(i);
        attached.impl()->requires_grad = true;
        out = attached;
      }
      outputs.push_back(out);
    }
    for (size_t i = 0; i < grad_outputs.size(); ++i) {
      if (!grad_outputs[i].defined()) {
        grad_outputs[i] = zeros(output_metas[i].shape, output_metas[i].dtype);
      }
    }
    GradCall call{inputs,       outputs, grad_outputs,
                  input_metas_, attrs_,  std::span<const bool>(needs_.get(), needs_size_)};
    TensorList grads = def_.grad(call);
    check(grads.size() == next_edges.size(), def_.name, "gradient rule returned ", grads.size(),
          " gradients for ", next_edges.size(), " inputs");
    return grads;
  }

  void release() override {
    inputs_.clear();
    outputs_.clear();
    released_ = true;
  }

  // Which inputs the engine wants a gradient for in this pass.
  void set_needs(const std::vector<char>& needs) {
    needs_size_ = needs.size();
    needs_.reset(new bool[needs.size()]);
    for (size_t i = 0; i < needs.size(); ++i) needs_[i] = needs[i] != 0;
  }

 private:
  const OpDef& def_;
  Attrs attrs_;
  std::vector<TensorMeta> input_metas_;
  std::vector<SavedTensor> inputs_;
  std::vector<SavedTensor> outputs_;
  bool released_ = false;
  std::unique_ptr<bool[]> needs_;
  size_t needs_size_ = 0;
};

// Adds the gradient into a leaf's .grad.
// Whether `t` is the only handle on its data: no other tensor, view or storage user.
bool owns_alone(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1 && !t.impl()->is_view &&
         t.offset() == 0 && t.is_contiguous() && !t.grad_fn() &&
         t.storage()->nbytes() == static_cast<size_t>(t.numel()) * t.element_size();
}

class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string name() const override { return "AccumulateGrad"; }
  TensorList apply(TensorList&& grad_outputs, bool create_graph) override {
    Tensor g = std::move(grad_outputs[0]);
    std::lock_guard<std::mutex> lock(mutex_);  // backward passes on several threads
    Tensor existing(leaf_->grad);
    if (!existing.defined()) {
      // A fresh tensor, since a later backward adds into .grad in place: the incoming
      // gradient itself when nothing else can see it (PyTorch steals it too), else a copy,
      // as it may be shared with other leaves or be a broadcast view.
      if (!create_graph && owns_alone(g) && g.shape() == leaf_->shape &&
          g.dtype() == leaf_->dtype) {
        leaf_->grad = g.detach().impl_ptr();
      } else {
        leaf_->grad = create_graph ? clone(g).impl_ptr() : g.detach().clone().impl_ptr();
      }
    } else if (create_graph) {
      leaf_->grad = add(existing, g).impl_ptr();
    } else {
      NoGradGuard guard;
      existing.add_(g);
    }
    return {};
  }

 private:
  std::shared_ptr<TensorImpl> leaf_;
  std::mutex mutex_;
};

// Feeds the caller's output gradients into the graph.
class GraphRoot : public Node {
 public:
  explicit GraphRoot(TensorList grads) : grads_(std::move(grads)) {}
  std::string name() const override { return "GraphRoot"; }
  TensorList apply(TensorList&&, bool) override { return grads_; }

 private:
  TensorList grads_;
};

}  // namespace

Edge gradient_edge(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  if (!impl->requires_grad) return {};
  // Threads may run ops on one parameter at once (inference from several threads, a map
  // with workers): the accumulator is made and read under a lock, striped by tensor.
  static std::mutex stripes[64];
  std::lock_guard<std::mutex> lock(stripes[(reinterpret_cast<uintptr_t>(impl) >> 6) % 64]);
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    acc->output_metas.push_back({t.shape(), t.dtype()});
    impl->grad_accumulator = acc;
  }
  return {acc, 0};
}

std::shared_ptr<Node> on_gradient_accumulated(const Tensor& leaf, std::function<void()> hook) {
  check_defined(leaf, "on_gradient_accumulated", "leaf");
  check(leaf.requires_grad() && !leaf.grad_fn(), "on_gradient_accumulated",
        "needs a leaf that requires grad (a parameter), got a tensor that ",
        leaf.requires_grad() ? "was computed by an op" : "does not require grad");
  std::shared_ptr<Node> accumulator = gradient_edge(leaf).node;
  accumulator->post_hooks.push_back(std::move(hook));
  return accumulator;
}

void record(const OpDef& def, std::span<const Tensor> inputs, std::span<Tensor> outputs,
            const Attrs& attrs) {
  auto node = std::make_shared<OpNode>(def, attrs);
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(gradient_edge(t));
  node->save(inputs, outputs);
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* out = outputs[i].impl();
    node->output_metas.push_back({out->shape, out->dtype});
    // Integer and bool results carry no gradient.
    if (!is_floating(out->dtype)) continue;
    out->requires_grad = true;
    out->grad_fn = node;
    out->output_nr = static_cast<int>(i);
  }
}

namespace {

struct EdgeKey {
  Node* node;
  int nr;
  bool operator==(const EdgeKey&) const = default;
};
struct EdgeKeyHash {
  size_t operator()(const EdgeKey& k) const {
    return std::hash<Node*>()(k.node) ^ (static_cast<size_t>(k.nr) * 0x9e3779b97f4a7c15ull);
  }
};

// Runs the graph below `root`. With captures, stores the gradient reaching each captured
// edge and runs only what is needed for them (no leaf .grad is touched).
void run_engine(const std::shared_ptr<Node>& root, bool retain_graph, bool create_graph,
                const std::vector<Edge>* captures, TensorList* captured) {
  // Collect nodes and dependency counts, then a topological order (root first).
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root.get()};
  std::unordered_set<Node*> seen{root.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      deps[e.node.get()]++;
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }

  // For grad(), run only the ancestors of captured edges; backward() runs everything.
  std::unordered_map<EdgeKey, size_t, EdgeKeyHash> capture_index;
  std::unordered_set<Node*> capture_nodes;
  std::unordered_set<Node*> needed;
  if (captures) {
    for (size_t i = 0; i < captures->size(); ++i) {
      const Edge& e = (*captures)[i];
      capture_index[{e.node.get(), e.input_nr}] = i;
      capture_nodes.insert(e.node.get());
    }
    std::unordered_map<Node*, int> pending = deps;
    std::vector<Node*> topo, queue{root.get()};
    while (!queue.empty()) {
      Node* n = queue.back();
      queue.pop_back();
      topo.push_back(n);
      for (const Edge& e : n->next_edges) {
        if (e.valid() && --pending[e.node.get()] == 0) queue.push_back(e.node.get());
      }
    }
    for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
      for (const Edge& e : (*it)->next_edges) {
        if (e.valid() && (capture_nodes.count(e.node.get()) || needed.count(e.node.get()))) {
          needed.insert(*it);
          break;
        }
      }
    }
  }
  auto wants_grad = [&](Node* n) { return !captures || needed.count(n) || capture_nodes.count(n); };

  std::unordered_map<Node*, TensorList> buffers;
  std::vector<std::shared_ptr<Node>> ready{root};
  bool previous_mode = grad_enabled();
  set_grad_enabled(create_graph);
  try {
    while (!ready.empty()) {
      std::shared_ptr<Node> node = ready.back();
      ready.pop_back();
      TensorList inputs = std::move(buffers[node.get()]);
      buffers.erase(node.get());
      inputs.resize(node->output_metas.size());
      if (captures && capture_nodes.count(node.get())) {
        for (size_t nr = 0; nr < inputs.size(); ++nr) {
          auto it = capture_index.find({node.get(), static_cast<int>(nr)});
          if (it != capture_index.end()) (*captured)[it->second] = inputs[nr];
        }
      }
      TensorList grads;
      bool run = !captures || node.get() == root.get() || needed.count(node.get());
      if (run) {
        if (auto* op = dynamic_cast<OpNode*>(node.get())) {
          std::vector<char> needs(op->next_edges.size());
          for (size_t i = 0; i < needs.size(); ++i) {
            const Edge& e = op->next_edges[i];
            needs[i] = e.valid() && wants_grad(e.node.get());
          }
          op->set_needs(needs);
        }
        grads = node->apply(std::move(inputs), create_graph);
        if (!retain_graph) node->release();
        if (!captures) {
          for (auto& hook : node->post_hooks) hook();
        }
      }
      for (size_t i = 0; i < node->next_edges.size(); ++i) {
        const Edge& e = node->next_edges[i];
        if (!e.valid()) continue;
        if (run && i < grads.size() && grads[i].defined()) {
          TensorList& buf = buffers[e.node.get()];
          if (buf.size() < e.node->output_metas.size()) buf.resize(e.node->output_metas.size());
          Tensor& slot = buf[e.input_nr];
          const TensorMeta& meta = e.node->output_metas[e.input_nr];
          Tensor g = grads[i];
          check(g.shape() == meta.shape, node->name(), "gradient rule produced shape ", g.shape(),
                " for an input of shape ", meta.shape);
          if (g.dtype() != meta.dtype) g = g.to(meta.dtype);
          slot = slot.defined() ? add(slot, g) : g;
        }
        if (--deps[e.node.get()] == 0) ready.push_back(e.node);
      }
    }
  } catch (...) {
    set_grad_enabled(previous_mode);
    throw;
  }
  set_grad_enabled(previous_mode);
}

std::shared_ptr<Node> make_root(const TensorList& outputs, const TensorList& grad_outputs,
                                const char* op) {
  check(grad_outputs.empty() || grad_outputs.size() == outputs.size(), op, "got ",
        grad_outputs.size(), " output gradients for ", outputs.size(), " outputs");
  TensorList grads;
  std::vector<Edge> edges;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    check_defined(out, op, "output");
    check(out.requires_grad(), op, "output ", i,
          " does not require grad and has no grad_fn (was it computed under no_grad, or "
          "from tensors that do not require grad?)");
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      check(out.numel() == 1, op, "a gradient can be created implicitly only for scalar ",
            "outputs; output ", i, " has shape ", out.shape());
      g = ones(out.shape(), out.dtype());
    } else {
      check(g.shape() == out.shape(), op, "output gradient ", i, " has shape ", g.shape(),
            ", expected the output's shape ", out.shape());
    }
    grads.push_back(g);
    edges.push_back(gradient_edge(out));
  }
  auto root = std::make_shared<GraphRoot>(std::move(grads));
  root->next_edges = std::move(edges);
  return root;
}

}  // namespace
}  // namespace autodiff

void backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph,
              bool create_graph) {
  auto root = autodiff::make_root(outputs, grad_outputs, "backward");
  autodiff::run_engine(root, retain_graph || create_graph, create_graph, nullptr, nullptr);
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                bool retain_graph, bool create_graph, bool allow_unused) {
  auto root = autodiff::make_root(outputs, grad_outputs, "grad");
  std::vector<autodiff::Edge> captures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_defined(inputs[i], "grad", "input");
    check(inputs[i].requires_grad(), "grad", "input ", i, " does not require grad");
    captures.push_back(autodiff::gradient_edge(inputs[i]));
  }
  TensorList result(inputs.size());
  autodiff::run_engine(root, retain_graph || create_graph, create_graph, &captures, &result);
  for (size_t i = 0; i < result.size(); ++i) {
    check(result[i].defined() || allow_unused, "grad", "input ", i,
          " was not used to compute the outputs; pass allow_unused=true to get an undefined "
          "gradient for it");
  }
  return result;
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph, bool create_graph) const {
  tessera::backward({*this}, grad_output.defined() ? TensorList{grad_output} : TensorList{},
                    retain_graph, create_graph);
}

}  // namespace tessera
