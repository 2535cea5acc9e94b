#include "train_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "reference_models.h"

#include "tessera/convert/lite_converter.h"
#include "tessera/core/parallel.h"
#include "tessera/core/random.h"
#include "tessera/data/augment.h"
#include "tessera/data/readers.h"
#include "tessera/graph/function.h"
#include "tessera/graph/passes.h"
#include "tessera/graph/saved_model.h"
#include "tessera/lite/lite.h"
#include "tessera/nn/nn.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"
#ifdef TESSERA_WITH_MPI
#include "tessera/distributed/data_parallel.h"
#include "tessera/distributed/mpi.h"
#endif

namespace tessera::tools {
namespace {

using namespace tessera::nn;

constexpr double kMean = kFashionMean, kStd = kFashionStd;

// Peak resident memory of this process in MiB (VmHWM), or -1 where /proc is absent.
double peak_resident_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

// {images, labels}, the images as their pixel bytes: a quarter of the memory of float32
// (47 MB for the training set), so gathering a shuffled batch reads a quarter of the bytes
// (bench_pipeline: 15k -> 46k batches/s before the conversion to float32).
TensorList load_split(const std::string& dir, const std::string& prefix) {
  return data::read_idx_pair(dir + "/" + prefix + "-images-idx3-ubyte.gz",
                             dir + "/" + prefix + "-labels-idx1-ubyte.gz", {.scale_images = false});
}

// The float32 value of each pixel byte: in [0, 1] (raw images, which the saved model
// takes), and standardized with the ops of the serving graph.
const data::ByteTable& unit_table() {
  static const data::ByteTable table = data::byte_table();
  return table;
}
const data::ByteTable& standardized_table() {
  static const data::ByteTable table = data::byte_table(kMean, kStd);
  return table;
}

// A batch of pixel bytes standardized (in the pipeline's thread, so it overlaps training).
data::Example standardize(data::Example batch) {
  batch[0] = data::bytes_to_float(batch[0], standardized_table());
  return batch;
}

// A batch of pixel bytes as raw images in [0, 1].
data::Example unit_range(data::Example batch) {
  batch[0] = data::bytes_to_float(batch[0], unit_table());
  return batch;
}

// The trained network as a graph that takes raw images in [0, 1] (standardization inside),
// saved with the signature "serve".
void save_serving_model(Module& net, const std::string& path) {
  net.eval();
  graph::NamedTensorList weights = net.named_parameters();
  for (auto& b : net.named_buffers()) weights.push_back(b);
  Function serve = function(
      [&](const TensorList& in) { return TensorList{net.forward((in[0] - kMean) / kStd)}; },
      {.name = "serve",
       .signature = {{{graph::kUnknownDim, 1, 28, 28}, DType::Float32, "images"}},
       .variables = weights});
  // Frozen for serving: weights become constants, so batch norm folds and activations fuse.
  auto g = std::make_shared<graph::Graph>(
      graph::optimize_for_inference(serve.graph_for({zeros({1, 1, 28, 28})})));
  graph::save_model(path, {{"serve", g}});
}

struct GraphCheck {
  double accuracy = 0;
  double eager_us = 0, graph_us = 0;  // median batch-1 latency
};

double median_us(const std::function<void()>& fn, int runs) {
  for (int i = 0; i < 20; ++i) fn();
  std::vector<double> us;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + runs / 2, us.end());
  return us[runs / 2];
}

// Reloads the saved model, measures its test accuracy on raw images, and compares batch-1
// latency with the eager network.
GraphCheck check_saved_model(Module& net, const std::string& path, const data::Dataset& test) {
  graph::SavedModel saved = graph::SavedModel::load(path);
  GraphCheck out;
  int64_t correct = 0, total = 0;
  auto it = test.batch(500).iterator();
  while (auto batch = it->next()) {
    Tensor logits = saved.run({(*batch)[0]})[0];
    correct += sum(eq(argmax(logits, 1), (*batch)[1].to(DType::Int64))).item<int64_t>();
    total += (*batch)[1].numel();
  }
  out.accuracy = static_cast<double>(correct) / static_cast<double>(total);
  Tensor one = (*test.batch(1).iterator()->next())[0];
  NoGradGuard no_grad;
  out.eager_us = median_us([&] { net.forward((one - kMean) / kStd); }, 300);
  out.graph_us = median_us([&] { saved.run({one}); }, 300);
  return out;
}

// The ranks of this job: MPI's world when mpirun started the process, else none.
struct Ranks {
#ifdef TESSERA_WITH_MPI
  std::shared_ptr<distributed::ProcessGroup> group;
#endif
  int rank = 0, size = 1, local_size = 1;
  bool chief() const { return rank == 0; }
};

Ranks join_ranks() {
  Ranks ranks;
#ifdef TESSERA_WITH_MPI
  // Only under a launcher: MPI started by hand in a lone process is slow and chatty.
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK")) {
    ranks.group = distributed::mpi_world();
    ranks.rank = ranks.group->rank();
    ranks.size = ranks.group->size();
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    ranks.local_size = local ? std::max(1, std::atoi(local)) : 1;
  }
#endif
  return ranks;
}

struct LiteCheck {
  double accuracy = 0, latency_us = 0;
  size_t file_bytes = 0, arena_bytes = 0;
};

// The saved model converted to a lite model (batch 1) and run by the lite runtime on every
// test image: accuracy on raw images and median batch-1 latency.
LiteCheck check_lite_model(const std::string& saved_model, const std::string& lite_path,
                           const convert::LiteOptions& options, const data::Dataset& test) {
  convert::convert_saved_model(saved_model, lite_path, "serve", options);
  std::unique_ptr<lite::Model> model;
  lite::Result r = lite::Model::load(lite_path, model);
  check(r.ok(), "train", "the lite model does not load: ", r.message);
  lite::Interpreter interpreter(*model);
  r = interpreter.allocate();
  check(r.ok(), "train", "the lite model does not allocate: ", r.message);
  LiteCheck out;
  out.arena_bytes = interpreter.arena_bytes();
  out.file_bytes = static_cast<size_t>(std::filesystem::file_size(lite_path));
  auto* input = static_cast<float*>(interpreter.input_data(0));
  const auto* logits = static_cast<const float*>(interpreter.output_data(0));
  int64_t correct = 0, total = 0;
  auto it = test.batch(500).iterator();
  while (auto batch = it->next()) {
    Tensor images = (*batch)[0].to(DType::Float32).contiguous();
    std::vector<int64_t> labels = (*batch)[1].to(DType::Int64).to_vector<int64_t>();
    const float* pixels = images.data<float>();
    for (size_t i = 0; i < labels.size(); ++i) {
      std::copy(pixels + i * 784, pixels + (i + 1) * 784, input);
      interpreter.invoke();
      correct += std::max_element(logits, logits + 10) - logits == labels[i];
      ++total;
    }
  }
  out.accuracy = static_cast<double>(correct) / static_cast<double>(total);
  out.latency_us = median_us([&] { interpreter.invoke(); }, 300);
  return out;
}

}  // namespace

void add_train_command(CLI::App& app, TrainOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a classifier on Fashion-MNIST, report test accuracy and throughput, and "
      "save a checkpoint");
  cmd->add_option("--model", o.model, "Network: cnn (2 conv + 2 dense) or mlp (784-256-256-10)")
      ->check(CLI::IsMember({"cnn", "mlp"}))
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Passes over the 60,000 training images")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Images per optimizer step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "Intra-op threads (0: one per core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed for weights and shuffling")->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir,
                  "Folder with the four Fashion-MNIST IDX files (Debian's dataset-fashion-mnist)")
      ->capture_default_str();
  cmd->add_option("--checkpoint", o.checkpoint, "Where to save the trained weights (safetensors)")
      ->capture_default_str();
  cmd->add_option("--saved-model", o.saved_model,
                  "Where to save the trained network as a graph (Tessera saved model)")
      ->capture_default_str();
  cmd->add_option("--lite-model", o.lite_model,
                  "Where to write the saved model converted for the lite runtime (.tlite)")
      ->capture_default_str();
  cmd->add_option("--resume", o.resume,
                  "Continue from a checkpoint of this command (weights, optimizer state and "
                  "epoch); --checkpoint is rewritten after every epoch")
      ->check(CLI::ExistingFile);
  cmd->add_option("--verbose", o.verbose, "0 quiet, 1 progress bar, 2 one line per epoch")
      ->capture_default_str();
}

int run_train(const TrainOptions& o) {
  Ranks ranks = join_ranks();
  // Ranks sharing a machine share its cores, unless told otherwise.
  if (o.threads > 0) {
    set_num_threads(o.threads);
  } else if (ranks.local_size > 1) {
    set_num_threads(std::max(1, num_threads() / ranks.local_size));
  }
  check(o.batch_size % ranks.size == 0, "train", "--batch-size ", o.batch_size,
        " is the global batch and must divide evenly over the ", ranks.size, " ranks");
  const int64_t batch_per_rank = o.batch_size / ranks.size;
  manual_seed(o.seed);
  // oneDNN's start-up (about 30 ms, 6% of an MLP epoch) overlaps reading the data.
  std::jthread warm_up([] {  // joins on the way out, should loading throw
    try {
      warm_up_kernels();
    } catch (const std::exception&) {  // the first product reports the problem itself
    }
  });
  data::Dataset train = data::Dataset::from_tensors(load_split(o.data_dir, "train"));
  TensorList test_pixels = load_split(o.data_dir, "t10k");
  data::Dataset test_bytes = data::Dataset::from_tensors(test_pixels);
  // Raw images in [0, 1], as the saved and lite models take them.
  data::Dataset test = data::Dataset::from_tensors(
      {data::bytes_to_float(test_pixels[0], unit_table()), test_pixels[1]});
  warm_up.join();
  if (ranks.chief()) {
    std::printf("Fashion-MNIST: %lld training and %lld test images; %d threads",
                static_cast<long long>(train.cardinality()),
                static_cast<long long>(test.cardinality()), num_threads());
    if (ranks.size > 1) {
      std::printf(" per rank, %d ranks of batch %lld", ranks.size,
                  static_cast<long long>(batch_per_rank));
    }
    std::printf("\n");
  }

  Model model(o.model == "cnn" ? make_reference_cnn() : make_reference_mlp());
  if (ranks.chief()) std::cout << model.module().summary({1, 1, 28, 28});
  model.compile(
      std::make_shared<Adam>(model.module().parameters(), o.lr),
      [](const Tensor& logits, const Tensor& labels) { return cross_entropy(logits, labels); },
      {std::make_shared<Accuracy>()});
  FitOptions fit;
  fit.epochs = o.epochs;
  fit.verbose = o.verbose;
  if (!o.resume.empty()) {
    Metadata meta = load_checkpoint(o.resume, model.module(), &model.optimizer());
    auto epoch = meta.find("epoch");
    check(epoch != meta.end(), "train", o.resume, " holds no epoch: not a checkpoint of train");
    fit.initial_epoch = std::stoll(epoch->second);
    if (ranks.chief()) {
      std::printf("resumed from %s after epoch %lld\n", o.resume.c_str(),
                  static_cast<long long>(fit.initial_epoch));
    }
  }
#ifdef TESSERA_WITH_MPI
  if (ranks.size > 1) {
    model.distribute(std::make_shared<distributed::DataParallel>(model.module_ptr(), ranks.group));
  }
#endif
  // After each epoch (rank 0), so an interrupted run can go on with --resume.
  fit.callbacks.push_back(std::make_shared<ModelCheckpoint>(o.checkpoint));

  // Every rank shuffles the same way (same seed and pass), then takes its shard.
  data::Dataset batches = train.shuffle(train.cardinality(), o.seed)
                              .shard(ranks.size, ranks.rank)
                              .batch(batch_per_rank)
                              .map(standardize)
                              .prefetch(2);
  History history = model.fit(batches, fit);

  auto start = std::chrono::steady_clock::now();
  constexpr int64_t kEvalBatch = 500;
  Logs test_logs =
      model.evaluate(test_bytes.shard(ranks.size, ranks.rank).batch(kEvalBatch).map(standardize));
  double eval_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!ranks.chief()) return 0;
  save_checkpoint(o.checkpoint, model.module(), &model.optimizer(),
                  {{"epoch", std::to_string(o.epochs)}, {"model", o.model}});

  save_serving_model(model.module(), o.saved_model);
  GraphCheck graph_check = check_saved_model(model.module(), o.saved_model, test);
  LiteCheck lite_float = check_lite_model(o.saved_model, o.lite_model, {}, test);
  // int8: activation ranges measured on 512 training images (raw, as the model takes them).
  convert::LiteOptions int8{.quantization = convert::Quantization::int8};
  auto calibration = train.batch(128).map(unit_range).iterator();
  for (int i = 0; i < 4; ++i) int8.calibration.push_back({(*calibration->next())[0]});
  std::string int8_path = o.lite_model;
  int8_path.insert(
      int8_path.rfind(".tlite") == std::string::npos ? int8_path.size() : int8_path.rfind(".tlite"),
      ".int8");
  LiteCheck lite_int8 = check_lite_model(o.saved_model, int8_path, int8, test);

  std::printf("\ntest accuracy: %.2f%% (loss %.4f)\n", 100 * test_logs.at("accuracy"),
              test_logs.at("loss"));
  auto rates_entry = history.values.find("samples_per_second");
  if (rates_entry != history.values.end()) {
    const std::vector<double>& rates = rates_entry->second;
    double best = 0, total_rate = 0, epoch_seconds = 0;
    for (double r : rates) best = std::max(best, r), total_rate += r;
    for (double r : rates) epoch_seconds += static_cast<double>(train.cardinality()) / r;
    std::printf("training throughput: %.0f images/s (mean over %zu epochs; best epoch %.0f)\n",
                total_rate / static_cast<double>(rates.size()), rates.size(), best);
    std::printf("epoch wall time: %.2f s (mean, training only)\n",
                epoch_seconds / static_cast<double>(rates.size()));
  } else {
    std::printf("no epochs left to train: the checkpoint is at epoch %lld\n",
                static_cast<long long>(fit.initial_epoch));
  }
  std::printf("inference throughput: %.0f images/s (batch %lld, with accuracy and loss)\n",
              static_cast<double>(test.cardinality()) / eval_seconds,
              static_cast<long long>(kEvalBatch));
  std::printf("peak resident memory: %.0f MiB\n", peak_resident_mib());
  std::printf("checkpoint saved to %s\n", o.checkpoint.c_str());
  std::printf(
      "saved model written to %s and reloaded: test accuracy %.2f%%; batch-1 latency "
      "eager %.0f us, graph %.0f us (median of 300)\n",
      o.saved_model.c_str(), 100 * graph_check.accuracy, graph_check.eager_us,
      graph_check.graph_us);
  auto print_lite = [](const char* kind, const std::string& path, const LiteCheck& c) {
    std::printf(
        "lite model (%s) written to %s (%.0f KiB, arena %.0f KiB): test accuracy %.2f%%; "
        "batch-1 latency %.0f us (median of 300, one thread)\n",
        kind, path.c_str(), static_cast<double>(c.file_bytes) / 1024,
        static_cast<double>(c.arena_bytes) / 1024, 100 * c.accuracy, c.latency_us);
  };
  print_lite("float32", o.lite_model, lite_float);
  print_lite("int8", int8_path, lite_int8);
  std::printf(
      "int8 against float32: accuracy %+.2f points, file %.2fx, latency %.2fx\n",
      100 * (lite_int8.accuracy - lite_float.accuracy),
      static_cast<double>(lite_int8.file_bytes) / static_cast<double>(lite_float.file_bytes),
      lite_int8.latency_us / lite_float.latency_us);
  return 0;
}

}  // namespace tessera::tools
