// interleave: tf.data's order. Slots of the cycle open datasets lazily from input elements;
// an exhausted slot is refilled when the cycle next reaches it.
#include "internal.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace detail {
namespace {

class InterleaveNode final : public DatasetNode {
 public:
  std::vector<const DatasetNode*> inputs() const override { return {input_.node().get()}; }
  InterleaveNode(Dataset input, std::function<Dataset(const Example&)> fn, int64_t cycle_length,
                 int64_t block_length)
      : input_(std::move(input)),
        fn_(std::move(fn)),
        cycle_length_(cycle_length),
        block_length_(block_length) {
    check(static_cast<bool>(fn_), "interleave", "the function is empty");
    check(cycle_length > 0 && cycle_length <= (int64_t{1} << 20), "interleave",
          "cycle_length must lie in [1, 2^20], got ", cycle_length);
    check(block_length > 0, "interleave", "block_length must be positive, got ", block_length);
  }

  std::unique_ptr<Iterator> make_iterator() const override {
    struct It final : Iterator {
      std::shared_ptr<const InterleaveNode> node;
      std::unique_ptr<Iterator> in;
      std::vector<std::unique_ptr<Iterator>> slots;
      size_t at = 0;
      int64_t taken_in_block = 0;
      size_t open = 0;

      void advance() {
        taken_in_block = 0;
        at = (at + 1) % slots.size();
      }
      std::optional<Example> next() override {
        for (;;) {
          if (slots[at]) {
            if (auto e = slots[at]->next()) {
              if (++taken_in_block == node->block_length_) advance();
              return e;
            }
            slots[at].reset();
            --open;
            advance();
          } else if (in) {
            if (auto e = in->next()) {
              slots[at] = node->fn_(*e).iterator();
              ++open;
              taken_in_block = 0;
            } else {
              in.reset();
            }
          } else if (open == 0) {
            return std::nullopt;
          } else {
            advance();
          }
        }
      }
    };
    auto it = std::make_unique<It>();
    it->node = self(this);
    it->in = input_.iterator();
    it->slots.resize(static_cast<size_t>(cycle_length_));
    return it;
  }
  int64_t cardinality() const override { return input_.cardinality() == 0 ? 0 : kUnknown; }

 private:
  Dataset input_;
  std::function<Dataset(const Example&)> fn_;
  int64_t cycle_length_, block_length_;
};

}  // namespace
}  // namespace detail

Dataset Dataset::interleave(std::function<Dataset(const Example&)> fn, int64_t cycle_length,
                            int64_t block_length) const {
  return detail::make_dataset<detail::InterleaveNode>(*this, std::move(fn), cycle_length,
                                                      block_length);
}

}  // namespace tessera::data
