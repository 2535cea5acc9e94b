// Tensor basics: dtypes, promotion, storage alignment, views sharing storage,
// creation functions, item/to_vector, printing, in-place rules.
#include <cstdint>

#include <omp.h>

#include <sys/prctl.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "tessera/core/allocator.h"
#include "tessera/core/parallel.h"
#include "test_util.h"

using namespace tessera;
using namespace tessera::testing;

// set_num_threads is for the whole process: a thread started later (a data pipeline's, a
// gradient exchange's) runs ops with the same count, and so does OpenMP there (oneDNN reads
// OpenMP's). OpenMP's own setting is per thread, which once let such a thread spin a second
// core after set_num_threads(1).
TEST(Threads, TheCountHoldsInEveryThread) {
  int before = num_threads();
  set_num_threads(1);
  int seen = 0, seen_by_openmp = 0;
  std::thread other([&] {
    seen = num_threads();
    seen_by_openmp = omp_get_max_threads();
  });
  other.join();
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(seen_by_openmp, 1);
  set_num_threads(before);
  EXPECT_EQ(num_threads(), before);
}

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::Float16), 2u);
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  EXPECT_EQ(dtype_size(DType::Int64), 8u);
  EXPECT_EQ(dtype_size(DType::Bool), 1u);
  EXPECT_STREQ(dtype_name(DType::BFloat16), "bfloat16");
}

TEST(DType, PromotionFollowsPyTorch) {
  EXPECT_EQ(promote_types(DType::Int32, DType::Float16), DType::Float16);
  EXPECT_EQ(promote_types(DType::Bool, DType::UInt8), DType::UInt8);
  EXPECT_EQ(promote_types(DType::Int8, DType::UInt8), DType::Int32);
  EXPECT_EQ(promote_types(DType::Float16, DType::BFloat16), DType::Float32);
  EXPECT_EQ(promote_types(DType::Int64, DType::Float32), DType::Float32);
  EXPECT_EQ(promote_types(DType::Float32, DType::Float64), DType::Float64);
  // Binary ops use it.
  EXPECT_EQ(add(ones({2}, DType::Int32), ones({2}, DType::Float16)).dtype(), DType::Float16);
  EXPECT_EQ(add(ones({2}, DType::Int32), 2.5).dtype(), DType::Float32);
  EXPECT_EQ(add(ones({2}, DType::Float16), 2.5).dtype(), DType::Float16);
  EXPECT_EQ(div(ones({2}, DType::Int64), ones({2}, DType::Int64)).dtype(), DType::Float32);
}

TEST(Half, RoundTripsAndRounds) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(static_cast<float>(float16(v)), v);
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(70000.0f))));
  EXPECT_EQ(static_cast<float>(float16(1.0f + 1.0f / 4096)), 1.0f);  // ties to even
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f)), 1.0f);
  EXPECT_EQ(static_cast<float>(bfloat16(3.140625f)), 3.140625f);
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(NAN))));
}

TEST(Tensor, StorageIsAlignedAndShared) {
  Tensor t = zeros({3, 5});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u);
  Tensor v = t.transpose(0, 1);
  EXPECT_EQ(v.shape(), Shape({5, 3}));
  EXPECT_EQ(v.strides(), Dims({1, 5}));
  EXPECT_EQ(v.storage(), t.storage());
  EXPECT_FALSE(v.is_contiguous());
  {
    NoGradGuard g;
    v.slice(0, 1, 2).fill_(7);
  }
  EXPECT_EQ(t.to_vector<float>()[1], 7.0f);  // row 0, column 1 of t
}

TEST(Allocator, CacheEvictsTheLeastRecentlyFreedBlocks) {
  empty_host_cache();
  set_host_cache_limit(size_t{4} << 20);
  const size_t mib = size_t{1} << 20;
  const size_t sizes[] = {mib, mib + 4096, mib + 8192, mib + 12288};
  void* blocks[4];
  for (int i = 0; i < 4; ++i) blocks[i] = allocate_host(sizes[i]);
  for (int i = 0; i < 3; ++i) free_host(blocks[i], sizes[i]);
  EXPECT_EQ(cached_host_bytes(), sizes[0] + sizes[1] + sizes[2]);
  free_host(blocks[3], sizes[3]);  // over the limit: the oldest block (sizes[0]) goes
  EXPECT_EQ(cached_host_bytes(), sizes[1] + sizes[2] + sizes[3]);
  EXPECT_EQ(allocate_host(sizes[3]), blocks[3]);  // served from the cache
  EXPECT_EQ(allocate_host(sizes[1]), blocks[1]);
  EXPECT_EQ(cached_host_bytes(), sizes[2]);
  free_host(blocks[1], sizes[1]);
  free_host(blocks[3], sizes[3]);
  set_host_cache_limit(size_t{256} << 20);
  empty_host_cache();
  EXPECT_EQ(cached_host_bytes(), 0u);
}

// The THPeligible flag of the mapping that holds p in /proc/self/smaps: 1 or 0, or -1 when
// the kernel does not say.
int huge_page_eligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::atoi(line.c_str() + 12);
    }
  }
  return -1;
}

// Big blocks start on a 2 MiB boundary and are advised onto transparent huge pages, which
// streaming kernels read faster (bench/RESULTS.md). Where the kernel offers them at all
// (its mode is not "never"), the block's mapping must be eligible.
TEST(Allocator, BigBlocksAskForHugePages) {
  const size_t bytes = size_t{8} << 20;
  void* block = allocate_host(bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % (size_t{2} << 20), 0u);
  std::ifstream mode_file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(mode_file, mode);
  const int eligible = huge_page_eligible(block);
  // (Under mode "always" every mapping is eligible, advised or not: only "madvise" hosts,
  // Debian's default, test the advice.)
  const bool disabled_here = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1;
  if (mode.empty() || mode.find("[never]") != std::string::npos || eligible < 0 || disabled_here) {
    std::printf("huge pages not checked: the kernel offers none here ('%s')\n", mode.c_str());
  } else {
    EXPECT_EQ(eligible, 1) << "mode " << mode;
  }
  free_host(block, bytes);
  void* small = allocate_host(4096);  // small blocks keep the usual 64-byte alignment
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 64, 0u);
  free_host(small, 4096);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = arange(0, 24).reshape({2, 3, 4});
  EXPECT_EQ(t.reshape({6, 4}).storage(), t.storage());
  EXPECT_EQ(t.permute({2, 0, 1}).shape(), Shape({4, 2, 3}));
  EXPECT_EQ(t.slice(2, 0, 4, 2).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}));
  EXPECT_EQ(t.narrow(1, 1, 1).to_vector<int64_t>(),
            (std::vector<int64_t>{4, 5, 6, 7, 16, 17, 18, 19}));
  EXPECT_EQ(t.select(0, 1).shape(), Shape({3, 4}));
  EXPECT_EQ(t.select(0, -1).to_vector<int64_t>()[0], 12);
  Tensor e = tensor({1, 2, 3}).reshape({3, 1}).expand({3, 4});
  EXPECT_EQ(e.strides(), Dims({1, 0}));
  EXPECT_EQ(e.to_vector<float>()[5], 2.0f);
  EXPECT_EQ(zeros({1, 3, 1}).squeeze().shape(), Shape({3}));
  EXPECT_EQ(zeros({1, 3, 1}).squeeze(0).shape(), Shape({3, 1}));
  EXPECT_EQ(zeros({3}).unsqueeze(-1).shape(), Shape({3, 1}));
  Tensor m = arange(0, 9).reshape({3, 3});
  EXPECT_EQ(m.diagonal().to_vector<int64_t>(), (std::vector<int64_t>{0, 4, 8}));
  EXPECT_EQ(m.diagonal(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(m.diagonal(-1).to_vector<int64_t>(), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(m.diagonal().storage(), m.storage());
}

TEST(Tensor, ReshapeCopiesOnlyWhenNeeded) {
  Tensor t = arange(0, 6).reshape({2, 3});
  Tensor tt = t.t();
  Tensor r = tt.reshape({6});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
  expect_error([&] { tt.view({6}); }, "view: shape [6] is not compatible");
  EXPECT_EQ(t.reshape({-1, 2}).shape(), Shape({3, 2}));
  expect_error([&] { t.reshape({4, -1}); }, "reshape: cannot reshape [2,3]");
  Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<int64_t>(), r.to_vector<int64_t>());
  Tensor k = t.clone();
  EXPECT_NE(k.storage(), t.storage());
}

TEST(Creation, Constants) {
  EXPECT_EQ(full({2, 2}, 3.5).to_vector<float>(), (std::vector<float>{3.5, 3.5, 3.5, 3.5}));
  EXPECT_EQ(arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1, 2, 0.25).dtype(), DType::Float32);
  EXPECT_EQ(arange(1, 2, 0.25).numel(), 4);
  EXPECT_EQ(arange(5, 0, -2).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  Tensor l = linspace(0, 1, 5, DType::Float64);
  EXPECT_EQ(l.to_vector<double>(), (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(linspace(0, 1, 0).numel(), 0);
  EXPECT_EQ(eye(2, 3).to_vector<float>(), (std::vector<float>{1, 0, 0, 0, 1, 0}));
  Tensor n = tensor({{1, 2}, {3, 4}}, DType::Int32);
  EXPECT_EQ(n.shape(), Shape({2, 2}));
  EXPECT_EQ(n.dtype(), DType::Int32);
  expect_error([] { tensor({{1, 2}, {3}}); }, "ragged");
  EXPECT_EQ(from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}).size(1), 3);
  expect_error([] { from_vector(std::vector<float>{1, 2}, {3}); }, "from_vector");
  EXPECT_EQ(zeros({0, 3}).numel(), 0);
  EXPECT_EQ(scalar_tensor(2, DType::Int8).item<int>(), 2);
}

TEST(Creation, ItemAndToVectorConvert) {
  EXPECT_EQ(full({}, 2.75, DType::Float64).item<int64_t>(), 2);
  EXPECT_EQ(full({1}, 3, DType::BFloat16).item<float>(), 3.0f);
  EXPECT_TRUE(full({1}, 2, DType::Int32).item<bool>());
  expect_error([] { zeros({2}).item<float>(); }, "item: only one-element tensors");
}

TEST(Tensor, InPlaceRules) {
  Tensor w = ones({3}).set_requires_grad();
  expect_error([&] { w.add_(ones({3})); }, "add_: in-place op on a tensor that requires grad");
  {
    NoGradGuard g;
    w.add_(ones({3}), 2);
  }
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{3, 3, 3}));
  Tensor a = zeros({2, 3});
  a.copy_(tensor({1, 2, 3}));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  expect_error([&] { a.copy_(zeros({4})); }, "copy_");
  a.mul_(2);
  EXPECT_EQ(a.to_vector<float>()[2], 6.0f);
  expect_error([] { ones({2}, DType::Int64).set_requires_grad(); },
               "only floating-point tensors can require gradients");
}

TEST(Printing, SmallAndSummarized) {
  std::string s = tensor({{1, 2}, {3, 4.5}}).to_string();
  EXPECT_NE(s.find("[[1.0000, 2.0000],\n"), std::string::npos) << s;
  EXPECT_NE(s.find("shape=[2,2], dtype=float32"), std::string::npos) << s;
  std::string big = arange(0, 2000).to_string();
  EXPECT_NE(big.find("..."), std::string::npos);
  EXPECT_LT(big.size(), 200u);
  EXPECT_NE(full({}, true, DType::Bool).to_string().find("True"), std::string::npos);
  EXPECT_NE(zeros({0, 2}).to_string().find("[]"), std::string::npos);
}

TEST(Errors, BadAxesAndShapes) {
  expect_error([] { sum(zeros({2, 3}), {2}); }, "sum: axis 2 is out of range");
  expect_error(
      [] {
        add(zeros({2, 3}), zeros({4}));
      },
      "add: shapes do not broadcast: [2,3] and [4]");
  expect_error([] { zeros({2}).transpose(0, 3); }, "transpose: axis 3 is out of range");
  expect_error([] { zeros({3}).select(0, 3); }, "select: index 3 is out of range");
  expect_error([] { zeros({2, 3}).permute({0, 0}); }, "permute: axis 0 repeats");
  expect_error([] { zeros({2}).expand({3}); }, "expand: cannot expand shape [2] to [3]");
  expect_error(
      [] {
        concat({zeros({2, 3}), zeros({2, 4})}, 0);
      },
      "concat: tensor 1 has shape [2,4]");
  expect_error([] { empty({-1}); }, "negative dimension");
  expect_error([] { zeros({13, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}); }, "at most 12 dimensions");
}
