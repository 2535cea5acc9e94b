// Tests of the data layer: the Dataset pipeline, the file readers (with fuzzed IDX and CSV
// inputs) and the image augmentations.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "tessera/data/augment.h"
#include "tessera/data/dataset.h"
#include "tessera/data/readers.h"
#include "test_util.h"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
using testing::expect_close;
using testing::expect_error;

// The int64 values of a dataset of int64 0-d (or 1-element) components, component c.
std::vector<int64_t> ints(const Dataset& ds, size_t c = 0) {
  std::vector<int64_t> out;
  auto it = ds.iterator();
  while (auto e = it->next()) out.push_back((*e)[c].item<int64_t>());
  return out;
}

// One-component elements from a list, through from_generator (so shapes may vary).
Dataset list_dataset(std::vector<Tensor> items) {
  return Dataset::from_generator([items] {
    struct It : Iterator {
      std::vector<Tensor> items;
      size_t i = 0;
      std::optional<Example> next() override {
        if (i >= items.size()) return std::nullopt;
        return Example{items[i++]};
      }
    };
    auto it = std::make_unique<It>();
    it->items = items;
    return it;
  });
}

std::vector<int64_t> iota(int64_t n, int64_t start = 0) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(start + i);
  return v;
}

// A scratch directory removed at the end of each test.
class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("tessera_data_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static void write_bytes(const std::string& p, const std::vector<unsigned char>& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(f.good()) << p;
  }
  static void write_text(const std::string& p, const std::string& text) {
    write_bytes(p, std::vector<unsigned char>(text.begin(), text.end()));
  }
  static void write_gzip(const std::string& p, const std::vector<unsigned char>& bytes) {
    gzFile f = gzopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr) << p;
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    ASSERT_EQ(gzclose(f), Z_OK);
  }
  static std::vector<unsigned char> read_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
  }

  fs::path dir_;
};

// ---------------------------------------------------------------- sources, batch

TEST(Dataset, FromTensorsSlicesAlongAxisZero) {
  Tensor x = arange(0, 30, 1, DType::Float32).reshape({10, 3});
  Tensor y = arange(0, 10, 1, DType::Int64);
  Dataset ds = Dataset::from_tensors({x, y});
  EXPECT_EQ(ds.cardinality(), 10);
  std::vector<Example> all = ds.collect();
  ASSERT_EQ(all.size(), 10u);
  for (int64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(all[i].size(), 2u);
    EXPECT_EQ(all[i][0].shape(), Shape({3}));
    EXPECT_EQ(all[i][1].dim(), 0);
    EXPECT_EQ(all[i][0].to_vector<float>(),
              std::vector<float>({3.f * i, 3.f * i + 1, 3.f * i + 2}));
    EXPECT_EQ(all[i][1].item<int64_t>(), i);
  }
  // Non-contiguous sources slice correctly too.
  Tensor xt = arange(0, 12, 1, DType::Float32).reshape({3, 4}).t();  // [4, 3]
  std::vector<Example> cols = Dataset::from_tensors({xt}).collect();
  ASSERT_EQ(cols.size(), 4u);
  EXPECT_EQ(cols[1][0].to_vector<float>(), std::vector<float>({1, 5, 9}));
}

TEST(Dataset, FromTensorsErrors) {
  expect_error([] { Dataset::from_tensors({zeros({10, 3}), zeros({9})}); }, "[10,3], [9]");
  expect_error([] { Dataset::from_tensors({scalar_tensor(1, DType::Float32)}); }, "0-d");
  expect_error([] { Dataset::from_tensors({}); }, "at least one tensor");
}

TEST(Dataset, BatchStacksAndKeepsRemainder) {
  Tensor x = arange(0, 20, 1, DType::Float32).reshape({10, 2});
  Tensor y = arange(0, 10, 1, DType::Int64);
  Dataset ds = Dataset::from_tensors({x, y}).batch(4);
  EXPECT_EQ(ds.cardinality(), 3);
  std::vector<Example> batches = ds.collect();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0][0].shape(), Shape({4, 2}));
  EXPECT_EQ(batches[2][0].shape(), Shape({2, 2}));
  EXPECT_EQ(batches[1][0].to_vector<float>(), std::vector<float>({8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(batches[2][1].to_vector<int64_t>(), std::vector<int64_t>({8, 9}));
  EXPECT_EQ(batches[0][1].dtype(), DType::Int64);

  Dataset dropped = Dataset::from_tensors({x, y}).batch(4, true);
  EXPECT_EQ(dropped.cardinality(), 2);
  std::vector<Example> full_batches = dropped.collect();
  ASSERT_EQ(full_batches.size(), 2u);
  EXPECT_EQ(full_batches[1][1].to_vector<int64_t>(), std::vector<int64_t>({4, 5, 6, 7}));
  EXPECT_EQ(Dataset::from_tensors({y}).batch(5, true).cardinality(), 2);
  EXPECT_EQ(Dataset::from_tensors({y}).batch(20, true).collect().size(), 0u);
}

TEST(Dataset, BatchOfStridedElements) {
  // Elements that are not contiguous take the strided-copy path.
  Tensor x = arange(0, 24, 1, DType::Float32).reshape({2, 3, 4}).permute({2, 0, 1});  // [4,2,3]
  std::vector<Example> b = Dataset::from_tensors({x}).batch(4).collect();
  ASSERT_EQ(b.size(), 1u);
  expect_close(b[0][0], x.contiguous());
}

// batch() over a random-access source (or a shuffle or shard of one) gathers rows by index
// (DatasetNode::index_order): it must give the batches of the element-by-element path,
// which a map in between forces, for every kind of row.
TEST(Dataset, BatchGatheringRowsMatchesElementByElement) {
  auto same = [](const Dataset& gathered, const Dataset& stacked) {
    std::vector<Example> a = gathered.collect(), b = stacked.collect();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].size(), b[i].size());
      for (size_t c = 0; c < a[i].size(); ++c) {
        EXPECT_EQ(a[i][c].shape(), b[i][c].shape()) << "batch " << i << " component " << c;
        EXPECT_EQ(a[i][c].dtype(), b[i][c].dtype());
        EXPECT_EQ(a[i][c].to(DType::Float64).to_vector<double>(),
                  b[i][c].to(DType::Float64).to_vector<double>())
            << "batch " << i << " component " << c;
      }
    }
  };
  auto through_map = [](const Dataset& d) { return d.map([](Example e) { return e; }); };
  Tensor images = rand({37, 2, 3, 5});
  Tensor labels = randint(0, 10, {37});
  Tensor strided = arange(0, 37 * 6, 1, DType::Float32).reshape({6, 37}).t();  // rows of stride 1
  Tensor empty_rows = Tensor::empty({37, 0}, DType::Float32);
  Tensor bytes = randint(0, 255, {37, 4}).to(DType::UInt8);
  Dataset source = Dataset::from_tensors({images, labels, strided, empty_rows, bytes});
  for (bool drop : {false, true}) {
    SCOPED_TRACE(drop ? "drop remainder" : "keep remainder");
    same(source.batch(8, drop), through_map(source).batch(8, drop));
    same(source.shuffle(37, 3).batch(8, drop), through_map(source.shuffle(37, 3)).batch(8, drop));
    same(source.shuffle(5, 3).batch(8, drop), through_map(source.shuffle(5, 3)).batch(8, drop));
    same(source.shuffle(37, 3).shard(3, 1).batch(4, drop),
         through_map(source.shuffle(37, 3).shard(3, 1)).batch(4, drop));
  }
  // Every pass reshuffles as the element path does, and sources without their own gather
  // (range) stack their elements.
  Dataset gathered = source.shuffle(37, 9).batch(10),
          stacked = through_map(source.shuffle(37, 9)).batch(10);
  for (int pass = 0; pass < 3; ++pass) same(gathered, stacked);
  same(Dataset::range(23).shuffle(23, 1).batch(5),
       through_map(Dataset::range(23).shuffle(23, 1)).batch(5));
  EXPECT_EQ(source.shuffle(37, 3).batch(8).cardinality(), 5);
}

TEST(Dataset, BatchShapeMismatchIsAnError) {
  Dataset ds = Dataset::from_generator([] {
    struct It : Iterator {
      int i = 0;
      std::optional<Example> next() override {
        if (i >= 2) return std::nullopt;
        return Example{zeros({++i + 1})};
      }
    };
    return std::make_unique<It>();
  });
  expect_error([&] { ds.batch(2).collect(); }, "component 0 of element 1 is [3]");
}

TEST(Dataset, PaddedBatchPadsEveryDimension) {
  std::vector<Tensor> items = {tensor({1}), tensor({2, 2, 2}), tensor({3, 3})};
  Dataset ds = list_dataset(items);
  std::vector<Example> b = ds.padded_batch(3, -1).collect();
  ASSERT_EQ(b.size(), 1u);
  expect_close(b[0][0], tensor({{1, -1, -1}, {2, 2, 2}, {3, 3, -1}}));

  // 2-d elements, and a remainder batch padded to its own maximum.
  Tensor a = ones({1, 2}), c = full({2, 1}, 5.0), d = full({1, 1}, 7.0);
  Dataset ds2 = list_dataset({a, c, d});
  std::vector<Example> b2 = ds2.padded_batch(2).collect();
  ASSERT_EQ(b2.size(), 2u);
  expect_close(b2[0][0], tensor({{{1, 1}, {0, 0}}, {{5, 0}, {5, 0}}}));
  expect_close(b2[1][0], full({1, 1, 1}, 7.0));
  EXPECT_EQ(ds2.padded_batch(2, 0, true).collect().size(), 1u);
}

TEST(Dataset, RangeAndGenerator) {
  EXPECT_EQ(ints(Dataset::range(5)), iota(5));
  EXPECT_EQ(ints(Dataset::range(10, 0, -3)), std::vector<int64_t>({10, 7, 4, 1}));
  EXPECT_EQ(Dataset::range(10, 0, -3).cardinality(), 4);
  EXPECT_EQ(Dataset::range(0, 10, 3).cardinality(), 4);
  EXPECT_EQ(Dataset::range(5, 5).cardinality(), 0);
  EXPECT_EQ(Dataset().cardinality(), 0);
  EXPECT_FALSE(Dataset().iterator()->next().has_value());
  Dataset gen = Dataset::from_generator([] { return Dataset::range(3).iterator(); }, 3);
  EXPECT_EQ(gen.cardinality(), 3);
  EXPECT_EQ(ints(gen), iota(3));
}

// ---------------------------------------------------------------- shuffle

TEST(Dataset, ShuffleIsASeededPermutation) {
  Dataset base = Dataset::range(100);
  Dataset s1 = base.shuffle(100, 7);
  std::vector<int64_t> a = ints(s1);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, iota(100));
  EXPECT_NE(a, iota(100));

  // Same seed, fresh dataset: same order, pass by pass.
  Dataset s2 = base.shuffle(100, 7);
  EXPECT_EQ(ints(s2), a);
  std::vector<int64_t> a2 = ints(s1);
  EXPECT_NE(a2, a) << "reshuffle_each_iteration should change the order between passes";
  EXPECT_EQ(ints(s2), a2);
  std::vector<int64_t> sorted2 = a2;
  std::sort(sorted2.begin(), sorted2.end());
  EXPECT_EQ(sorted2, iota(100));

  // Another seed, another order; no reshuffle: every pass repeats the first.
  EXPECT_NE(ints(base.shuffle(100, 8)), a);
  Dataset fixed = base.shuffle(100, 7, false);
  std::vector<int64_t> f1 = ints(fixed);
  EXPECT_EQ(f1, a);
  EXPECT_EQ(ints(fixed), f1);

  // Repeat makes a new pass of the shuffle for every repetition.
  std::vector<int64_t> rep = ints(base.shuffle(100, 7).repeat(2));
  ASSERT_EQ(rep.size(), 200u);
  EXPECT_EQ(std::vector<int64_t>(rep.begin(), rep.begin() + 100), a);
  EXPECT_EQ(std::vector<int64_t>(rep.begin() + 100, rep.end()), a2);
  EXPECT_EQ(base.shuffle(10, 1).cardinality(), 100);

  // Sources with random access shuffle indices instead of elements: the same order.
  Dataset streamed = base.map([](Example e) { return e; });
  EXPECT_EQ(ints(streamed.shuffle(100, 7)), a);
  EXPECT_EQ(ints(streamed.shuffle(10, 5)), ints(base.shuffle(10, 5)));
  Dataset slices = Dataset::from_tensors({arange(0, 100, 1, DType::Int64)});
  EXPECT_EQ(ints(slices.shuffle(100, 7)), a);

  // set_next_pass reaches the shuffle through later nodes: pass 1 again, then pass 0.
  Dataset piped = base.shuffle(100, 7).map([](Example e) { return e; }).batch(10).prefetch(2);
  auto flat = [&] {
    std::vector<int64_t> out;
    auto it = piped.iterator();
    while (auto b = it->next())
      for (int64_t v : (*b)[0].to_vector<int64_t>()) out.push_back(v);
    return out;
  };
  piped.set_next_pass(1);
  EXPECT_EQ(flat(), a2);
  piped.set_next_pass(0);
  EXPECT_EQ(flat(), a);
  EXPECT_EQ(flat(), a2);  // and counting on from there
}

TEST(Dataset, ShuffleBufferBoundsDisplacement) {
  // With a buffer of 10, output i can only be one of the first i + 10 inputs.
  std::vector<int64_t> out = ints(Dataset::range(1000).shuffle(10, 3));
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, iota(1000));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_LT(out[i], static_cast<int64_t>(i) + 10);
  // A buffer of 1 keeps the order.
  EXPECT_EQ(ints(Dataset::range(50).shuffle(1, 3)), iota(50));
  expect_error([] { Dataset::range(5).shuffle(0, 1); }, "buffer_size");
}

// ---------------------------------------------------------------- map

TEST(Dataset, ParallelMapKeepsOrderAndMatchesInline) {
  // Uneven work so that workers finish out of order.
  auto fn = [](Example e) {
    int64_t i = e[0].item<int64_t>();
    if (i % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    return Example{full({2}, static_cast<double>(i * i), DType::Float64), e[0]};
  };
  Dataset base = Dataset::range(300);
  std::vector<Example> inline_out = base.map(fn).collect();
  std::vector<Example> parallel_out = base.map(fn, 3).collect();
  ASSERT_EQ(inline_out.size(), 300u);
  ASSERT_EQ(parallel_out.size(), 300u);
  for (size_t i = 0; i < 300; ++i) {
    EXPECT_EQ(parallel_out[i][1].item<int64_t>(), static_cast<int64_t>(i));
    EXPECT_EQ(parallel_out[i][0].to_vector<double>(), inline_out[i][0].to_vector<double>());
  }
  EXPECT_EQ(base.map(fn, 3).cardinality(), 300);
  // Abandoning a parallel pass early joins the workers cleanly.
  auto it = base.map(fn, 3).iterator();
  EXPECT_EQ((*it->next())[1].item<int64_t>(), 0);
  it.reset();
}

TEST(Dataset, MapErrorsReachTheConsumerInOrder) {
  auto fn = [](Example e) {
    check(e[0].item<int64_t>() != 5, "test_fn", "bad element 5");
    return e;
  };
  for (int workers : {0, 3}) {
    auto it = Dataset::range(10).map(fn, workers).iterator();
    for (int64_t i = 0; i < 5; ++i) EXPECT_EQ((*it->next())[0].item<int64_t>(), i);
    expect_error([&] { it->next(); }, "bad element 5");
    // The pass goes on after the failing element.
    EXPECT_EQ((*it->next())[0].item<int64_t>(), 6);
  }
  // Errors from the input of a parallel map surface too.
  Dataset failing = Dataset::from_generator([] {
    struct It : Iterator {
      int i = 0;
      std::optional<Example> next() override {
        check(i < 3, "source", "input failed at 3");
        return Example{full({}, i++, DType::Int64)};
      }
    };
    return std::make_unique<It>();
  });
  auto it = failing.map([](Example e) { return e; }, 2).iterator();
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ((*it->next())[0].item<int64_t>(), i);
  expect_error([&] { it->next(); }, "input failed at 3");
  EXPECT_FALSE(it->next().has_value());
}

TEST(Dataset, MapIndexedGivesIndexAndEpoch) {
  Dataset ds = Dataset::range(10, 20).map_indexed([](Example e, const ElementInfo& info) {
    return Example{e[0], full({}, info.index, DType::Int64), full({}, info.epoch, DType::Int64)};
  });
  EXPECT_EQ(ints(ds, 1), iota(10));
  EXPECT_EQ(ints(ds, 2), std::vector<int64_t>(10, 1));  // second pass
  EXPECT_EQ(ints(ds, 0), iota(10, 10));
}

// ---------------------------------------------------------------- other transformations

TEST(Dataset, FilterTakeSkipRepeat) {
  Dataset r = Dataset::range(10);
  auto even = [](const Example& e) { return e[0].item<int64_t>() % 2 == 0; };
  EXPECT_EQ(ints(r.filter(even)), std::vector<int64_t>({0, 2, 4, 6, 8}));
  EXPECT_EQ(r.filter(even).cardinality(), kUnknown);

  EXPECT_EQ(ints(r.take(3)), iota(3));
  EXPECT_EQ(r.take(3).cardinality(), 3);
  EXPECT_EQ(ints(r.take(30)), iota(10));
  EXPECT_EQ(r.take(30).cardinality(), 10);
  EXPECT_EQ(ints(r.take(-1)), iota(10));
  EXPECT_EQ(ints(r.take(0)), std::vector<int64_t>{});

  EXPECT_EQ(ints(r.skip(7)), std::vector<int64_t>({7, 8, 9}));
  EXPECT_EQ(r.skip(7).cardinality(), 3);
  EXPECT_EQ(ints(r.skip(20)), std::vector<int64_t>{});
  EXPECT_EQ(r.skip(20).cardinality(), 0);
  EXPECT_EQ(ints(r.skip(-1)), std::vector<int64_t>{});

  EXPECT_EQ(ints(r.take(3).repeat(3)), std::vector<int64_t>({0, 1, 2, 0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(r.repeat(3).cardinality(), 30);
  EXPECT_EQ(r.repeat().cardinality(), kInfinite);
  EXPECT_EQ(r.repeat(0).cardinality(), 0);
  EXPECT_EQ(ints(r.repeat(0)), std::vector<int64_t>{});
  EXPECT_EQ(ints(r.repeat().take(25)).size(), 25u);
  EXPECT_EQ(r.repeat().take(25).cardinality(), 25);
  EXPECT_EQ(r.repeat().skip(5).cardinality(), kInfinite);
  // Repeating an empty dataset forever ends instead of spinning.
  EXPECT_EQ(ints(r.take(0).repeat()), std::vector<int64_t>{});
  EXPECT_EQ(ints(r.filter([](const Example&) { return false; }).repeat()), std::vector<int64_t>{});
  expect_error([&] { r.repeat().collect(); }, "infinite");
}

TEST(Dataset, CacheKeepsTheFirstCompletePass) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  Dataset src = Dataset::from_generator(
      [calls] {
        ++*calls;
        return Dataset::range(5).iterator();
      },
      5);
  Dataset cached = src.cache();
  EXPECT_EQ(cached.cardinality(), 5);
  // An abandoned pass caches nothing.
  {
    auto it = cached.iterator();
    it->next();
  }
  EXPECT_EQ(*calls, 1);
  EXPECT_EQ(ints(cached), iota(5));
  EXPECT_EQ(*calls, 2);
  EXPECT_EQ(ints(cached), iota(5));
  EXPECT_EQ(ints(cached.shuffle(5, 1)).size(), 5u);
  EXPECT_EQ(*calls, 2);
  // Cached tensors are the same objects each pass (no copies).
  std::vector<Example> p1 = cached.collect(), p2 = cached.collect();
  EXPECT_TRUE(p1[3][0].same(p2[3][0]));
}

TEST(Dataset, ZipConcatenatesComponents) {
  Dataset a = Dataset::range(5);
  Dataset b = Dataset::from_tensors(
      {arange(0, 8, 1, DType::Float32).reshape({4, 2}), arange(100, 104, 1, DType::Int64)});
  Dataset z = Dataset::zip({a, b});
  EXPECT_EQ(z.cardinality(), 4);
  std::vector<Example> all = z.collect();
  ASSERT_EQ(all.size(), 4u);
  for (int64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(all[i].size(), 3u);
    EXPECT_EQ(all[i][0].item<int64_t>(), i);
    EXPECT_EQ(all[i][1].to_vector<float>(), std::vector<float>({2.f * i, 2.f * i + 1}));
    EXPECT_EQ(all[i][2].item<int64_t>(), 100 + i);
  }
  EXPECT_EQ(Dataset::zip({a.repeat(), a.repeat()}).cardinality(), kInfinite);
  EXPECT_EQ(Dataset::zip({a.repeat(), a}).cardinality(), 5);
  EXPECT_EQ(Dataset::zip({a.filter([](const Example&) { return true; }), a}).cardinality(),
            kUnknown);
}

TEST(Dataset, InterleaveFollowsTfDataOrder) {
  // tf.data's documented example: range(1, 6), each x repeated 6 times, cycle 2, block 4.
  Dataset ds = Dataset::range(1, 6).interleave(
      [](const Example& e) { return Dataset::from_tensors({e[0].reshape({1})}).repeat(6); }, 2, 4);
  std::vector<int64_t> expected = {1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 3, 3, 3,
                                   3, 4, 4, 4, 4, 3, 3, 4, 4, 5, 5, 5, 5, 5, 5};
  EXPECT_EQ(ints(ds), expected);
  EXPECT_EQ(ds.cardinality(), kUnknown);
  // block_length 1: round robin over cycle_length inputs.
  Dataset rr = Dataset::range(3).interleave(
      [](const Example& e) {
        int64_t x = e[0].item<int64_t>();
        return Dataset::range(10 * x, 10 * x + 3);
      },
      3);
  EXPECT_EQ(ints(rr), std::vector<int64_t>({0, 10, 20, 1, 11, 21, 2, 12, 22}));
}

TEST(Dataset, ShardTakesEveryNth) {
  Dataset r = Dataset::range(10);
  EXPECT_EQ(ints(r.shard(3, 0)), std::vector<int64_t>({0, 3, 6, 9}));
  EXPECT_EQ(ints(r.shard(3, 1)), std::vector<int64_t>({1, 4, 7}));
  EXPECT_EQ(ints(r.shard(3, 2)), std::vector<int64_t>({2, 5, 8}));
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r.shard(3, i).cardinality(), static_cast<int64_t>(ints(r.shard(3, i)).size()));
  }
  EXPECT_EQ(Dataset::range(2).shard(3, 2).cardinality(), 0);
  expect_error([&] { r.shard(3, 3); }, "index 3");
  expect_error([&] { r.shard(0, 0); }, "num_shards");
}

TEST(Dataset, PrefetchKeepsOrderAndPropagatesErrors) {
  Dataset ds = Dataset::range(1000).map([](Example e) { return e; }, 2).prefetch(4);
  EXPECT_EQ(ints(ds), iota(1000));
  EXPECT_EQ(ds.cardinality(), 1000);
  EXPECT_EQ(ints(Dataset::range(10).prefetch(0)), iota(10));
  // Abandoning a prefetching pass over an infinite dataset stops its thread.
  {
    auto it = Dataset::range(3).repeat().prefetch(2).iterator();
    for (int i = 0; i < 10; ++i) EXPECT_EQ((*it->next())[0].item<int64_t>(), i % 3);
  }
  Dataset failing = Dataset::range(5).map([](Example e) {
    check(e[0].item<int64_t>() < 3, "test_fn", "boom at 3");
    return e;
  });
  auto it = failing.prefetch(2).iterator();
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ((*it->next())[0].item<int64_t>(), i);
  expect_error([&] { it->next(); }, "boom at 3");
  EXPECT_FALSE(it->next().has_value());
}

// The pipeline's own threads (prefetch, parallel map workers) run their ops on one thread:
// they overlap training, which has the cores, and a second OpenMP team of theirs would spin
// beside it. The consumer's thread keeps the process's count.
TEST(Dataset, PipelineThreadsRunTheirOpsOnOneThread) {
  const int saved = num_threads();
  set_num_threads(2);
  auto seen = [](Example e) {
    return Example{full({}, static_cast<int64_t>(num_threads()), DType::Int64)};
  };
  for (const Dataset& ds :
       {Dataset::range(4).map(seen).prefetch(2), Dataset::range(4).map(seen, 2)}) {
    for (int64_t n : ints(ds)) EXPECT_EQ(n, 1);
  }
  EXPECT_EQ(ints(Dataset::range(2).map(seen)), (std::vector<int64_t>{2, 2}));  // inline
  EXPECT_EQ(num_threads(), 2);
  std::thread([] {  // 0 follows the process's count again
    set_this_thread_num_threads(1);
    EXPECT_EQ(num_threads(), 1);
    set_this_thread_num_threads(0);
    EXPECT_EQ(num_threads(), 2);
  })
      .join();
  set_num_threads(saved);
}

TEST(Dataset, CardinalityPropagates) {
  Dataset r = Dataset::range(100);
  EXPECT_EQ(r.shuffle(10, 1).map([](Example e) { return e; }).batch(8).prefetch(2).cardinality(),
            13);
  EXPECT_EQ(r.batch(8, true).cardinality(), 12);
  EXPECT_EQ(r.repeat().batch(8).cardinality(), kInfinite);
  EXPECT_EQ(r.filter([](const Example&) { return true; }).batch(8).cardinality(), kUnknown);
  EXPECT_EQ(r.cache().take(10).skip(3).cardinality(), 7);
  EXPECT_EQ(r.shard(4, 1).batch(5).cardinality(), 5);
  EXPECT_EQ(Dataset::from_generator([] { return Dataset::range(1).iterator(); }).cardinality(),
            kUnknown);
}

// The shape of the main training input: 60000 Fashion-MNIST-sized images per epoch.
TEST(Dataset, ShuffleBatchPipelineIsFast) {
  Tensor images = rand({60000, 1, 28, 28});
  Tensor labels = randint(0, 10, {60000});
  Dataset ds = Dataset::from_tensors({images, labels}).shuffle(60000, 42).batch(128).prefetch(2);
  EXPECT_EQ(ds.cardinality(), 469);
  double best = 1e9;
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    int64_t seen = 0, batches = 0;
    double checksum = 0;
    auto it = ds.iterator();
    while (auto b = it->next()) {
      ++batches;
      seen += (*b)[0].shape()[0];
      checksum += (*b)[0].data<float>()[0];
      ASSERT_EQ((*b)[0].shape()[1], 1);
      ASSERT_EQ((*b)[1].dtype(), DType::Int64);
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
    EXPECT_EQ(seen, 60000);
    EXPECT_EQ(batches, 469);
    EXPECT_GT(checksum, 0);
  }
  std::printf(
      "[ rate     ] from_tensors->shuffle(60000)->batch(128)->prefetch(2): %.1f ms/epoch, "
      "%.2f M images/s, %.0f MB/s\n",
      best * 1e3, 60000 / best / 1e6, 60000.0 * 784 * 4 / best / 1e6);
  EXPECT_LT(best, 5.0);
}

// ---------------------------------------------------------------- augmentations

TEST(Augment, FlipTwiceIsIdentity) {
  Tensor img = testing::random_tensor({3, 4, 5}, DType::Float32);
  Generator g(1);
  Tensor once = random_flip(img, g, 1.0);
  expect_close(once, flip(img, {2}));
  expect_close(random_flip(once, g, 1.0), img);
  expect_close(random_flip(img, g, 0.0), img);
  // p = 0.5 flips about half the time.
  int flips = 0;
  for (int i = 0; i < 400; ++i) {
    Generator e = element_generator(9, ElementInfo{i, 0});
    Tensor out = random_flip(img, e);
    if (out.to_vector<float>() != img.to_vector<float>()) ++flips;
  }
  EXPECT_GT(flips, 150);
  EXPECT_LT(flips, 250);
}

TEST(Augment, NormalizeUsesPerChannelStatistics) {
  Tensor img = tensor({{{1, 2}, {3, 4}}, {{10, 20}, {30, 40}}});  // [2, 2, 2]
  Tensor out = normalize(img, {2, 20}, {0.5, 10});
  expect_close(out, tensor({{{-2, 0}, {2, 4}}, {{-1, 0}, {1, 2}}}));
  expect_close(normalize(img, {1}, {1}), sub(img, 1.0));
  expect_error([&] { normalize(img, {1, 2, 3}, {1}); }, "one per channel");
  expect_error([&] { normalize(img.to(DType::UInt8), {1}, {1}); }, "floating");
}

// Byte images through a table give the bits of scaling (read_idx's v / 255) and then
// standardizing float32 images with the tensor ops, for any shape and layout.
TEST(Augment, BytesToFloatMatchesScalingThenStandardizing) {
  Tensor bytes = randint(0, 256, {3, 4, 5}).to(DType::UInt8);
  bytes.data<uint8_t>()[0] = 0;
  bytes.data<uint8_t>()[1] = 255;
  Tensor strided = bytes.permute({2, 0, 1});  // not contiguous
  std::vector<uint8_t> raw = strided.contiguous().to_vector<uint8_t>();
  Tensor scaled = Tensor::empty(strided.shape(), DType::Float32);
  for (size_t i = 0; i < raw.size(); ++i)
    scaled.data<float>()[i] = static_cast<float>(raw[i]) / 255.0f;
  Tensor unit = bytes_to_float(strided, byte_table());
  EXPECT_EQ(unit.shape(), strided.shape());
  EXPECT_EQ(unit.to_vector<float>(), scaled.to_vector<float>());
  Tensor standardized = bytes_to_float(strided, byte_table(0.2860, 0.3530));
  EXPECT_EQ(standardized.to_vector<float>(), ((scaled - 0.2860) / 0.3530).to_vector<float>());
  EXPECT_EQ(bytes_to_float(Tensor::empty({0, 7}, DType::UInt8), byte_table()).shape(),
            Shape({0, 7}));
  expect_error([&] { bytes_to_float(scaled, byte_table()); }, "bytes_to_float: expected uint8");
  expect_error([] { byte_table(0.5, std::nullopt); }, "give both mean and std");
  expect_error([] { byte_table(0.5, 0.0); }, "std is 0");
}

TEST(Augment, CropShapesAndContent) {
  Tensor img = add(arange(0, 2 * 6 * 6, 1, DType::Float32).reshape({2, 6, 6}), 1.0);
  Generator g(3);
  // No padding and a full-size crop: the image itself.
  expect_close(random_crop(img, 6, 6, 0, g), img);
  std::set<std::pair<int, int>> offsets;
  std::vector<float> src = img.to_vector<float>();
  for (int i = 0; i < 200; ++i) {
    Tensor c = random_crop(img, 6, 6, 2, g);
    ASSERT_EQ(c.shape(), Shape({2, 6, 6}));
    // The crop must be the zero-padded image seen through one of the 5x5 windows.
    std::vector<float> v = c.to_vector<float>();
    int matches = 0;
    for (int top = 0; top <= 4; ++top) {
      for (int left = 0; left <= 4; ++left) {
        bool same = true;
        for (int ch = 0; ch < 2 && same; ++ch) {
          for (int y = 0; y < 6 && same; ++y) {
            for (int x = 0; x < 6 && same; ++x) {
              int sy = top + y - 2, sx = left + x - 2;
              float want = sy >= 0 && sy < 6 && sx >= 0 && sx < 6 ? src[(ch * 6 + sy) * 6 + sx] : 0;
              same = v[(ch * 6 + y) * 6 + x] == want;
            }
          }
        }
        if (same) {
          ++matches;
          offsets.insert({top, left});
        }
      }
    }
    EXPECT_EQ(matches, 1);
  }
  EXPECT_GT(offsets.size(), 10u);  // 25 possible windows
  Tensor small = random_crop(img, 4, 3, 0, g);
  EXPECT_EQ(small.shape(), Shape({2, 4, 3}));
  EXPECT_EQ(random_crop(img.select(0, 0), 32, 32, 13, g).shape(), Shape({32, 32}));
  expect_error([&] { random_crop(img, 11, 6, 2, g); }, "larger than the padded image");
}

TEST(Augment, BrightnessAndContrast) {
  Tensor img = tensor({{{0.f, 1.f}, {2.f, 3.f}}});
  Generator g(5);
  Tensor b = random_brightness(img, 0.5, g);
  std::vector<float> bv = b.to_vector<float>();
  float delta = bv[0];
  EXPECT_LE(std::fabs(delta), 0.5f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(bv[i], i + delta, 1e-6);
  Tensor c = random_contrast(img, 0.5, 1.5, g);
  std::vector<float> cv = c.to_vector<float>();
  float factor = (cv[3] - cv[0]) / 3.0f;
  EXPECT_GE(factor, 0.5f);
  EXPECT_LE(factor, 1.5f);
  EXPECT_NEAR((cv[0] + cv[1] + cv[2] + cv[3]) / 4, 1.5f, 1e-5);  // the mean is kept
  // The input is never written.
  expect_close(img, tensor({{{0.f, 1.f}, {2.f, 3.f}}}));
}

TEST(Augment, DeterministicForAnyWorkerCount) {
  Tensor images = rand({64, 3, 8, 8});
  Dataset base = Dataset::from_tensors({images, arange(0, 64, 1, DType::Int64)});
  auto pipeline = [](const Tensor& x, Generator& g) {
    Tensor y = random_crop(x, 8, 8, 2, g);
    y = random_flip(y, g);
    y = random_brightness(y, 0.1, g);
    return normalize(y, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25});
  };
  Dataset d0 = base.map_indexed(augment(123, pipeline), 0);
  Dataset d3 = base.map_indexed(augment(123, pipeline), 3);
  std::vector<Example> a0 = d0.collect(), a3 = d3.collect();
  ASSERT_EQ(a0.size(), 64u);
  ASSERT_EQ(a3.size(), 64u);
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(a0[i][0].to_vector<float>(), a3[i][0].to_vector<float>()) << i;
    EXPECT_EQ(a3[i][1].item<int64_t>(), static_cast<int64_t>(i));
  }
  // A second epoch draws differently.
  std::vector<Example> b0 = d0.collect();
  int differ = 0;
  for (size_t i = 0; i < 64; ++i)
    differ += a0[i][0].to_vector<float>() != b0[i][0].to_vector<float>();
  EXPECT_GT(differ, 32);
}

// ---------------------------------------------------------------- IDX

// An IDX file's bytes: header, big-endian sizes, then already-encoded data.
std::vector<unsigned char> idx_file(unsigned char type, std::vector<uint32_t> dims,
                                    const std::vector<unsigned char>& data) {
  std::vector<unsigned char> b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

template <typename T>
std::vector<unsigned char> big_endian(const std::vector<T>& values) {
  std::vector<unsigned char> out;
  for (T v : values) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    for (size_t k = sizeof(T); k-- > 0;) out.push_back(raw[k]);
  }
  return out;
}

TEST_F(DataFiles, IdxRoundTripsEveryTypePlainAndGzip) {
  struct Case {
    unsigned char code;
    std::vector<unsigned char> data;
    DType dtype;
    std::vector<double> values;
  };
  std::vector<Case> cases = {
      {0x08, {0, 1, 128, 255, 7, 9}, DType::UInt8, {0, 1, 128, 255, 7, 9}},
      {0x09, {0, 1, 0x80, 0xff, 7, 9}, DType::Int8, {0, 1, -128, -1, 7, 9}},
      {0x0B,
       big_endian<int16_t>({0, -1, 300, -32768, 32767, 5}),
       DType::Int32,
       {0, -1, 300, -32768, 32767, 5}},
      {0x0C,
       big_endian<int32_t>({0, -1, 70000, -2147483647, 2147483647, 5}),
       DType::Int32,
       {0, -1, 70000, -2147483647, 2147483647, 5}},
      {0x0D,
       big_endian<float>({0.5f, -1.25f, 3e7f, 1e-3f, 2, 5}),
       DType::Float32,
       {0.5, -1.25, 3e7, static_cast<double>(1e-3f), 2, 5}},
      {0x0E,
       big_endian<double>({0.5, -1.25, 3e300, 1e-3, 2, 5}),
       DType::Float64,
       {0.5, -1.25, 3e300, 1e-3, 2, 5}},
  };
  for (const Case& c : cases) {
    std::vector<unsigned char> file = idx_file(c.code, {2, 3}, c.data);
    std::string plain = path(std::to_string(c.code) + ".idx");
    std::string gz = plain + ".gz";
    write_bytes(plain, file);
    write_gzip(gz, file);
    for (const std::string& p : {plain, gz}) {
      Tensor t = read_idx(p);
      EXPECT_EQ(t.dtype(), c.dtype) << p;
      EXPECT_EQ(t.shape(), Shape({2, 3})) << p;
      EXPECT_EQ(t.to_vector<double>(), c.values) << p;
    }
  }
  // A 1-d file and an empty one.
  write_bytes(path("v.idx"), idx_file(0x08, {4}, {9, 8, 7, 6}));
  EXPECT_EQ(read_idx(path("v.idx")).to_vector<int64_t>(), std::vector<int64_t>({9, 8, 7, 6}));
  write_bytes(path("e.idx"), idx_file(0x08, {0, 28, 28}, {}));
  EXPECT_EQ(read_idx(path("e.idx")).shape(), Shape({0, 28, 28}));
}

TEST_F(DataFiles, IdxErrorsNameFileAndOffset) {
  std::string p = path("bad.idx");
  write_bytes(p, {1, 2, 8, 1, 0, 0, 0, 1, 5});
  expect_error([&] { read_idx(p); }, "bad magic at offset 0");
  write_bytes(p, {0, 0, 8});
  expect_error([&] { read_idx(p); }, "truncated header at offset 0: expected 4 bytes, found 3");
  write_bytes(p, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0});
  expect_error([&] { read_idx(p); }, "truncated header at offset 4");
  write_bytes(p, {0, 0, 0x42, 1, 0, 0, 0, 1, 5});
  expect_error([&] { read_idx(p); }, "unknown element type code 0x42 at offset 2");
  write_bytes(p, idx_file(0x08, {2, 3, 4}, {1, 2, 3, 4, 5}));
  expect_error([&] { read_idx(p); },
               p + ": truncated data at offset 16: expected 24 bytes, found 5");
  write_bytes(p, idx_file(0x0D, {2}, {0, 0, 0, 0, 0, 0, 0}));
  expect_error([&] { read_idx(p); }, "expected 8 bytes, found 7");
  write_bytes(p, idx_file(0x08, {2}, {1, 2, 3}));
  expect_error([&] { read_idx(p); }, "1 unexpected bytes after the data at offset 10");
  // Huge sizes are refused before any allocation (this would be 2^128 bytes).
  write_bytes(p, idx_file(0x0E, {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2}));
  expect_error([&] { read_idx(p); }, "truncated data at offset 20");
  write_bytes(p, idx_file(0x08, {60000, 28, 28}, std::vector<unsigned char>(100)));
  expect_error([&] { read_idx(p); }, "found 100");
  write_bytes(p, {0, 0, 8, 200});
  expect_error([&] { read_idx(p); }, "200 dimensions at offset 3");
  expect_error([&] { read_idx(path("missing.idx")); }, "cannot open");
  // A truncated gzip stream.
  std::string gz = path("cut.idx.gz");
  write_gzip(gz, idx_file(0x08, {100}, std::vector<unsigned char>(100, 7)));
  std::vector<unsigned char> bytes = read_bytes(gz);
  bytes.resize(bytes.size() / 2);
  write_bytes(gz, bytes);
  expect_error([&] { read_idx(gz); }, "truncated gzip stream");
}

TEST_F(DataFiles, IdxDatasetPairsImagesAndLabels) {
  std::vector<unsigned char> pixels(3 * 2 * 2);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * 20);
  write_gzip(path("img.gz"), idx_file(0x08, {3, 2, 2}, pixels));
  write_bytes(path("lab"), idx_file(0x08, {3}, {4, 0, 9}));
  Dataset ds = idx_dataset(path("img.gz"), path("lab"));
  EXPECT_EQ(ds.cardinality(), 3);
  std::vector<Example> all = ds.collect();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1][0].shape(), Shape({1, 2, 2}));
  EXPECT_EQ(all[1][0].dtype(), DType::Float32);
  expect_close(all[1][0], tensor({{{80.f / 255, 100.f / 255}, {120.f / 255, 140.f / 255}}}));
  EXPECT_EQ(all[2][1].dtype(), DType::Int64);
  EXPECT_EQ(all[2][1].item<int64_t>(), 9);
  TensorList raw = read_idx_pair(
      path("img.gz"), path("lab"),
      {.scale_images = false, .add_channel_axis = false, .label_dtype = DType::UInt8});
  EXPECT_EQ(raw[0].shape(), Shape({3, 2, 2}));
  EXPECT_EQ(raw[0].dtype(), DType::UInt8);
  write_bytes(path("lab2"), idx_file(0x08, {2}, {4, 0}));
  expect_error([&] { idx_dataset(path("img.gz"), path("lab2")); }, "holds 3 images but");
}

// Random truncations and bit flips of valid files: the reader must either succeed or
// throw tessera::Error, never crash, hang or throw anything else.
template <typename Read>
void fuzz_file(const std::string& p, const std::vector<unsigned char>& valid, bool gzip,
               uint32_t seed, int rounds, Read read) {
  std::mt19937 rng(seed);
  int errors = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<unsigned char> bytes = valid;
    int mode = static_cast<int>(rng() % 3);
    if (mode != 1 && !bytes.empty()) bytes.resize(rng() % bytes.size());  // truncate
    if (mode != 0 && !bytes.empty()) {                                    // flip bits
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] ^= 1u << (rng() % 8);
    }
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    try {
      read(p);
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << " (gzip " << gzip << "): non-tessera exception "
                    << e.what();
    }
  }
  EXPECT_GT(errors, rounds / 4) << "most corruptions should be detected";
}

TEST_F(DataFiles, IdxFuzzNeverCrashes) {
  std::vector<float> values(6 * 5);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f;
  std::vector<std::vector<unsigned char>> files = {
      idx_file(0x08, {4, 3, 3}, std::vector<unsigned char>(36, 200)),
      idx_file(0x0D, {6, 5}, big_endian(values)),
      idx_file(0x0B, {10}, big_endian<int16_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))};
  uint32_t seed = 1;
  for (const auto& valid : files) {
    fuzz_file(path("fuzz.idx"), valid, false, seed++, 300,
              [](const std::string& p) { read_idx(p); });
    std::string gz = path("valid.gz");
    write_gzip(gz, valid);
    fuzz_file(path("fuzz.idx.gz"), read_bytes(gz), true, seed++, 300,
              [](const std::string& p) { read_idx(p); });
  }
}

// ---------------------------------------------------------------- CSV

TEST_F(DataFiles, CsvTypedColumnsAndSelection) {
  std::string p = path("t.csv");
  write_text(p,
             "id,x,label,name\r\n"
             "1, 0.5,3,\"a, quoted \"\"name\"\"\"\n"
             "\n"
             "2,-1.25e2,7,b\n"
             "3,,0,c\n");
  CsvTable t = read_csv(p, {.column_dtypes = {DType::Int64, DType::Float64, DType::Int32},
                            .select_columns = {"id", "x", "label"}});
  EXPECT_EQ(t.names, std::vector<std::string>({"id", "x", "label"}));
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0].dtype(), DType::Int64);
  EXPECT_EQ(t.columns[0].to_vector<int64_t>(), std::vector<int64_t>({1, 2, 3}));
  EXPECT_EQ(t.columns[1].dtype(), DType::Float64);
  std::vector<double> x = t.columns[1].to_vector<double>();
  EXPECT_EQ(x[0], 0.5);
  EXPECT_EQ(x[1], -125.0);
  EXPECT_TRUE(std::isnan(x[2]));
  EXPECT_EQ(t.columns[2].dtype(), DType::Int32);
  EXPECT_EQ(t.columns[2].to_vector<int64_t>(), std::vector<int64_t>({3, 7, 0}));

  // Selection order follows the request; rows become elements of scalars.
  Dataset ds = csv_dataset(
      p, {.column_dtypes = {DType::Int64, DType::Int64}, .select_columns = {"label", "id"}});
  EXPECT_EQ(ds.cardinality(), 3);
  std::vector<Example> rows = ds.collect();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1][0].dim(), 0);
  EXPECT_EQ(rows[1][0].item<int64_t>(), 7);
  EXPECT_EQ(rows[1][1].item<int64_t>(), 2);

  // No header, other delimiter, bools, columns by index.
  std::string q = path("u.tsv");
  write_text(q, "1\ttrue\t2.5\n0\tFALSE\t3\n");
  CsvTable u = read_csv(q, {.header = false,
                            .delimiter = '\t',
                            .column_dtypes = {DType::Float32, DType::Bool},
                            .select_indices = {2, 1}});
  EXPECT_EQ(u.names, std::vector<std::string>({"2", "1"}));
  EXPECT_EQ(u.columns[0].to_vector<float>(), std::vector<float>({2.5f, 3.f}));
  EXPECT_EQ(u.columns[1].dtype(), DType::Bool);
  EXPECT_EQ(u.columns[1].to_vector<int64_t>(), std::vector<int64_t>({1, 0}));
  // Defaults: everything float32.
  CsvTable all = read_csv(q, {.header = false, .delimiter = '\t', .select_indices = {0, 2}});
  EXPECT_EQ(all.columns[0].dtype(), DType::Float32);
}

TEST_F(DataFiles, CsvErrorsNameTheLine) {
  std::string p = path("bad.csv");
  write_text(p, "a,b,c\n1,2,3\n4,5\n");
  expect_error([&] { read_csv(p); }, p + ": line 3 (byte offset 12): expected 3 fields, found 2");
  write_text(p, "a,b\n1,2\n3,x7\n");
  expect_error(
      [&] {
        read_csv(p, {.column_dtypes = {DType::Int64, DType::Int64}});
      },
      "line 3 (byte offset 8), column 'b': cannot parse 'x7' as int64");
  write_text(p, "a,b\n1,\"2\n");
  expect_error([&] { read_csv(p); }, "line 2 (byte offset 4): unterminated quote");
  write_text(p, "a\n300\n");
  expect_error([&] { read_csv(p, {.column_dtypes = {DType::UInt8}}); }, "out of range");
  write_text(p, "a\n\n");
  expect_error([&] { read_csv(p, {.select_columns = {"nope"}}); }, "no column named 'nope'");
  write_text(p, "");
  expect_error([&] { read_csv(p); }, "empty");
  write_text(p, "a,b\n1,2\n");
  expect_error([&] { read_csv(p, {.column_dtypes = {DType::Int64}}); },
               "1 column dtypes given for 2");
}

TEST_F(DataFiles, CsvFuzzNeverCrashes) {
  std::string text = "id,x,y,name\n";
  for (int i = 0; i < 20; ++i) {
    text += std::to_string(i) + "," + std::to_string(i * 0.25) + "," + std::to_string(-i) + ",\"n" +
            std::to_string(i) + "\"\n";
  }
  std::vector<unsigned char> valid(text.begin(), text.end());
  fuzz_file(path("fuzz.csv"), valid, false, 77, 600, [](const std::string& p) {
    read_csv(p, {.column_dtypes = {DType::Int64, DType::Float32, DType::Int8},
                 .select_columns = {"id", "x", "y"}});
  });
}

// ---------------------------------------------------------------- images, text

TEST_F(DataFiles, ImageFolderLabelsAndDecodes) {
  // root/cat/{a,b}.png, root/dog/c.png (3x2 RGB), a non-image and a hidden folder to skip.
  for (const char* dir : {"root/dog", "root/cat", "root/.hidden"})
    fs::create_directories(dir_ / dir);
  auto write_png = [&](const std::string& name, unsigned char base) {
    std::vector<unsigned char> px(2 * 3 * 3);  // h=2, w=3, c=3
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(base + i);
    ASSERT_NE(stbi_write_png(path(name).c_str(), 3, 2, 3, px.data(), 3 * 3), 0);
  };
  write_png("root/cat/b.png", 100);
  write_png("root/cat/a.png", 10);
  write_png("root/dog/c.PNG", 200);
  write_png("root/.hidden/x.png", 0);
  write_text(path("root/dog/notes.txt"), "not an image");

  ImageFolderIndex index = list_image_folder(path("root"));
  EXPECT_EQ(index.class_names, std::vector<std::string>({"cat", "dog"}));
  ASSERT_EQ(index.files.size(), 3u);
  EXPECT_EQ(fs::path(index.files[0]).filename().string(), "a.png");
  EXPECT_EQ(index.labels, std::vector<int64_t>({0, 0, 1}));

  Dataset ds = image_folder(path("root"));
  EXPECT_EQ(ds.cardinality(), 3);
  std::vector<Example> all = ds.collect();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0][0].shape(), Shape({2, 3, 3}));
  EXPECT_EQ(all[0][0].dtype(), DType::UInt8);
  EXPECT_EQ(all[0][0].to_vector<int64_t>()[5], 15);
  EXPECT_EQ(all[1][0].to_vector<int64_t>()[0], 100);
  EXPECT_EQ(all[2][1].item<int64_t>(), 1);

  // Float, channels first, gray, with decoding workers.
  ImageFolderOptions opts;
  opts.channels = 1;
  opts.to_float = true;
  opts.channels_first = true;
  opts.num_workers = 2;
  std::vector<Example> gray = image_folder(path("root"), opts).collect();
  ASSERT_EQ(gray.size(), 3u);
  EXPECT_EQ(gray[0][0].shape(), Shape({1, 2, 3}));
  EXPECT_EQ(gray[0][0].dtype(), DType::Float32);
  float first = gray[0][0].to_vector<float>()[0];
  EXPECT_NEAR(first, 11.0f / 255, 1.5f / 255);  // luma of (10, 11, 12)

  ImageFolderOptions rgb_chw;
  rgb_chw.channels_first = true;
  Tensor chw = read_image(index.files[0], rgb_chw);
  EXPECT_EQ(chw.shape(), Shape({3, 2, 3}));
  EXPECT_EQ(chw.select(0, 1).to_vector<int64_t>(), std::vector<int64_t>({11, 14, 17, 20, 23, 26}));

  ImageFolderOptions resized;
  resized.size = std::make_pair(int64_t{4}, int64_t{6});
  EXPECT_EQ(read_image(index.files[0], resized).shape(), Shape({4, 6, 3}));

  write_text(path("root/dog/broken.png"), "not a png");
  expect_error([&] { image_folder(path("root")).collect(); }, "broken.png: cannot decode");
  expect_error([&] { image_folder(path("nowhere")); }, "not a directory");
}

TEST_F(DataFiles, TextLinesAsBytes) {
  std::string p = path("lines.txt");
  write_text(p, "first\nsecond line\r\n\nlast");
  Dataset ds = text_lines(p);
  EXPECT_EQ(ds.cardinality(), kUnknown);
  std::vector<std::string> lines;
  for (const Example& e : ds.collect()) {
    EXPECT_EQ(e[0].dtype(), DType::UInt8);
    lines.push_back(bytes_to_string(e[0]));
  }
  EXPECT_EQ(lines, std::vector<std::string>({"first", "second line", "", "last"}));
  EXPECT_EQ(ds.collect().size(), 4u);  // a second pass reads again
  EXPECT_EQ(string_to_bytes("ab").to_vector<int64_t>(), std::vector<int64_t>({97, 98}));
  expect_error([&] { text_lines(path("missing.txt")); }, "cannot open");
}

// ---------------------------------------------------------------- real data, when present

TEST(RealData, FashionMnistLabels) {
  const std::string p = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
  if (!fs::exists(p)) GTEST_SKIP() << p << " is not on this machine";
  Tensor labels = read_idx(p);
  EXPECT_EQ(labels.shape(), Shape({60000}));
  EXPECT_EQ(labels.dtype(), DType::UInt8);
  std::vector<int64_t> v = labels.to_vector<int64_t>();
  std::vector<int64_t> counts(10);
  for (int64_t x : v) {
    ASSERT_GE(x, 0);
    ASSERT_LE(x, 9);
    ++counts[x];
  }
  for (int64_t c : counts) EXPECT_EQ(c, 6000);  // Fashion-MNIST is balanced
}

TEST(RealData, FashionMnistImagesThroughThePipeline) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!fs::exists(dir + "train-images-idx3-ubyte.gz")) GTEST_SKIP() << dir << " is missing";
  auto start = std::chrono::steady_clock::now();
  TensorList data =
      read_idx_pair(dir + "train-images-idx3-ubyte.gz", dir + "train-labels-idx1-ubyte.gz");
  double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ rate     ] read_idx_pair(Fashion-MNIST train, gzip): %.0f ms\n", load * 1e3);
  EXPECT_EQ(data[0].shape(), Shape({60000, 1, 28, 28}));
  EXPECT_EQ(data[0].dtype(), DType::Float32);
  std::vector<Example> first = Dataset::from_tensors(data).batch(128).take(1).collect();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0][0].shape(), Shape({128, 1, 28, 28}));
  double mx = amax(first[0][0]).item<double>();
  EXPECT_LE(mx, 1.0);
  EXPECT_GT(mx, 0.5);
}

}  // namespace
}  // namespace tessera::data
