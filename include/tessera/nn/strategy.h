// Distribution strategies, as Keras' tf.distribute.Strategy: Model's fit(), train_step()
// and evaluate() call a strategy at fixed points, so the same training code runs in one
// process or data-parallel over many (distributed::DataParallel is one). Without a
// strategy a Model trains alone.
#pragma once
#include <string>
#include <vector>

namespace tessera::nn {

class Model;

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank 0 prints progress and writes checkpoints and logs; the others stay quiet.
  bool is_chief() const { return rank() == 0; }

  // Before the first step of fit(): make every rank's weights equal.
  virtual void on_train_begin(Model&) {}
  // After backward, before the optimizer step: combine the ranks' gradients.
  virtual void after_backward(Model&) = 0;
  // Sums `values` over ranks in place: losses, sample counts and metric states.
  virtual void sum_over_ranks(std::vector<double>& values) = 0;
  // Called on a rank whose training threw, before the exception leaves fit(): the other
  // ranks stop with an error naming this one instead of waiting for it.
  virtual void report_failure(const std::string& /*message*/) {}
};

}  // namespace tessera::nn
