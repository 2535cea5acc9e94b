// A differentiable allreduce (see differentiable.h): a hand-made autodiff node, since the
// op needs a process group, which the op registry's attributes cannot carry.
#include "tessera/distributed/differentiable.h"

#include "tessera/autodiff/autodiff.h"
#include "tessera/ops/creation.h"

namespace tessera::distributed {
namespace {

class SumOverRanksNode : public autodiff::Node {
 public:
  explicit SumOverRanksNode(std::shared_ptr<ProcessGroup> group) : group_(std::move(group)) {}
  std::string name() const override { return "sum_over_ranks"; }
  TensorList apply(TensorList&& grad_outputs, bool create_graph) override {
    check(!create_graph, "sum_over_ranks", "gradients of gradients are not supported");
    Tensor g = grad_outputs[0].defined() ? grad_outputs[0].contiguous().clone()
                                         : zeros(output_metas[0].shape, output_metas[0].dtype);
    group_->allreduce(g, ReduceOp::sum);
    return {g};
  }

 private:
  std::shared_ptr<ProcessGroup> group_;
};

}  // namespace

Tensor sum_over_ranks_with_grad(const std::shared_ptr<ProcessGroup>& group, const Tensor& x) {
  check(x.defined(), "sum_over_ranks", "got an undefined tensor");
  Tensor out = x.detach().contiguous().clone();
  group->allreduce(out, ReduceOp::sum);
  if (grad_enabled() && x.requires_grad()) {
    auto node = std::make_shared<SumOverRanksNode>(group);
    node->next_edges.push_back(autodiff::gradient_edge(x));
    node->output_metas.push_back({out.shape(), out.dtype()});
    TensorImpl* impl = out.impl();
    impl->requires_grad = true;
    impl->grad_fn = node;
    impl->output_nr = 0;
  }
  return out;
}

}  // namespace tessera::distributed
