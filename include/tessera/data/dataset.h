// Input pipelines in the style of tf.data: a Dataset is an immutable recipe (a chain of
// nodes shared by copies); iterator() starts one pass over it. Elements are Examples:
// tuples of tensors such as {image, label}.
//
// Tensors in elements may share storage with the source (from_tensors yields views, cache()
// hands out the same tensors every pass): treat them as read-only and never write in place.
// Pipelines carry no autodiff history.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/ops/op.h"

namespace tessera::data {

using Example = TensorList;

// Cardinality values for datasets whose length is not a known count.
inline constexpr int64_t kUnknown = -1;
inline constexpr int64_t kInfinite = -2;

class Iterator {
 public:
  virtual ~Iterator() = default;
  // The next element, or nullopt at the end of the pass (and on every call after it).
  virtual std::optional<Example> next() = 0;
};

// Where an element sits, for functions that need per-element randomness: `index` counts
// the elements entering the map in this pass, `epoch` counts the passes over the map node.
struct ElementInfo {
  int64_t index = 0;
  int64_t epoch = 0;
};

using MapFn = std::function<Example(Example)>;
using MapIndexedFn = std::function<Example(Example, const ElementInfo&)>;

namespace detail {
class DatasetNode;

// The elements of one pass of a node as indices into a random-access source (see
// DatasetNode::index_order).
struct IndexOrder {
  std::shared_ptr<const DatasetNode> source;     // random_access()
  std::function<std::optional<int64_t>()> next;  // the next index; nullopt ends the pass
};

// One step of a pipeline. Immutable once built, apart from pass counters.
class DatasetNode : public std::enable_shared_from_this<DatasetNode> {
 public:
  virtual ~DatasetNode() = default;
  virtual std::unique_ptr<Iterator> make_iterator() const = 0;
  virtual int64_t cardinality() const = 0;
  // Sources that can make element i (of cardinality() elements) directly say so: shuffle
  // then permutes indices instead of buffering whole elements.
  virtual bool random_access() const { return false; }
  virtual Example get(int64_t index) const;
  // Nodes whose elements are a random-access source's elements in some order (the source
  // itself, or a shuffle or shard of one) can start a pass as that order of indices:
  // batch() then gathers each batch's rows straight from the source (get_batch) instead of
  // making and stacking the elements one at a time. Nullopt where they cannot.
  virtual std::optional<IndexOrder> index_order() const { return std::nullopt; }
  // The elements at `indices` of a random-access source stacked along a new axis 0: what
  // batch() makes of get(i) for each (the default does just that).
  virtual Example get_batch(std::span<const int64_t> indices) const;
  // The datasets this node reads.
  virtual std::vector<const DatasetNode*> inputs() const { return {}; }
  // Makes the next pass over this node and everything upstream count as pass `pass` (the
  // shuffle order and map_indexed's epoch derive from it). Nodes with counters override it.
  virtual void set_next_pass(uint64_t pass) const {
    for (const DatasetNode* in : inputs()) in->set_next_pass(pass);
  }
};
}  // namespace detail

class Dataset {
 public:
  Dataset();  // the empty dataset
  explicit Dataset(std::shared_ptr<const detail::DatasetNode> node);

  std::unique_ptr<Iterator> iterator() const;  // one pass ("epoch"); each call starts a new pass
  // The next iterator() is pass `pass` in every node of the pipeline: a training run that
  // resumes at epoch e sets pass e and sees the shuffle order of the uninterrupted run.
  // (Under repeat(), every repetition counts as a pass of the nodes upstream of it.)
  void set_next_pass(uint64_t pass) const;
  int64_t cardinality() const;  // element count, or kUnknown / kInfinite
  // Every element of one pass (an error for infinite datasets).
  std::vector<Example> collect() const;

  // --- sources ---
  // Slices every tensor along axis 0 (views, no copy): element i is {t[i] for t in tensors}.
  static Dataset from_tensors(TensorList tensors);
  static Dataset from_generator(std::function<std::unique_ptr<Iterator>()> make_iterator,
                                int64_t cardinality = kUnknown);
  // int64 scalars start, start+step, ... before stop.
  static Dataset range(int64_t start, int64_t stop, int64_t step = 1);
  static Dataset range(int64_t stop) { return range(0, stop, 1); }

  // --- transformations ---
  // With num_workers > 0, fn runs on that many threads; the output order is the input order.
  Dataset map(MapFn fn, int num_workers = 0) const;
  // Like map, and fn also gets the element's position (for deterministic augmentation).
  Dataset map_indexed(MapIndexedFn fn, int num_workers = 0) const;
  Dataset filter(std::function<bool(const Example&)> pred) const;
  // tf.data buffer semantics: each output is drawn uniformly from a buffer of the next
  // buffer_size inputs. The order depends only on (seed, pass number); without
  // reshuffle_each_iteration every pass gives the first pass's order.
  Dataset shuffle(int64_t buffer_size, uint64_t seed, bool reshuffle_each_iteration = true) const;
  // Stacks each component of batch_size consecutive elements along a new axis 0.
  Dataset batch(int64_t batch_size, bool drop_remainder = false) const;
  // Like batch, but elements may differ in shape (not rank): each component is padded with
  // padding_value at the end of every dimension to the largest size in the batch.
  Dataset padded_batch(int64_t batch_size, double padding_value = 0,
                       bool drop_remainder = false) const;
  // A background thread keeps up to buffer_size elements ready.
  Dataset prefetch(int64_t buffer_size) const;
  Dataset repeat(int64_t count = -1) const;  // -1: forever
  Dataset take(int64_t n) const;             // n < 0: all
  Dataset skip(int64_t n) const;             // n < 0: all
  // The first complete pass is kept in memory and replayed by later passes.
  Dataset cache() const;
  // Element i is the concatenation of element i of each dataset; ends with the shortest.
  static Dataset zip(std::vector<Dataset> datasets);
  // Maps each input element to a dataset and mixes their elements: block_length from each
  // of cycle_length open datasets in turn (tf.data's interleave order).
  Dataset interleave(std::function<Dataset(const Example&)> fn, int64_t cycle_length,
                     int64_t block_length = 1) const;
  // Elements index, index + num_shards, index + 2 * num_shards, ...
  Dataset shard(int64_t num_shards, int64_t index) const;

  const std::shared_ptr<const detail::DatasetNode>& node() const { return node_; }

 private:
  std::shared_ptr<const detail::DatasetNode> node_;
};

// Stacks component c of every example along a new axis 0 (what batch() does). All examples
// need the same number of components, and each component the same shape and dtype; `op`
// names the caller in errors.
Example stack_examples(std::span<const Example> examples, const char* op = "stack_examples");
// Like stack_examples, padding each component to the per-dimension maximum.
Example pad_and_stack_examples(std::span<const Example> examples, double padding_value,
                               const char* op = "pad_and_stack_examples");

}  // namespace tessera::data
