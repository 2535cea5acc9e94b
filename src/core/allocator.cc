#include "tessera/core/allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "tessera/core/error.h"

namespace tessera {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kCacheMinBytes = 256 * 1024;  // smaller blocks: malloc is already fast
// Bigger blocks are rare (whole datasets, not per-step temporaries) and would pin their
// memory for the life of the process.
constexpr size_t kCacheMaxBlockBytes = size_t{64} << 20;
constexpr size_t kPage = 4096;
// Blocks this big start on a 2 MiB boundary and ask for transparent huge pages: streaming
// over 4 KiB pages stalls at every page (hardware prefetchers stop at page boundaries and
// each page costs a TLB miss). Summing 64 MiB, 1 thread: 3.3 -> 2.2 ms; adding: 10.7 ->
// 7.9 ms (bench/RESULTS.md). Debian's kernels give huge pages only where asked (madvise).
constexpr size_t kHugePage = size_t{2} << 20;

size_t default_limit() {
  const char* env = std::getenv("TESSERA_CACHE_MB");
  // 256 MiB holds a training step's temporaries for mid-sized models without pinning much.
  return env ? static_cast<size_t>(std::atoll(env)) << 20 : size_t{256} << 20;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
constexpr bool kSanitized = __has_feature(address_sanitizer);
#else
constexpr bool kSanitized = false;
#endif

// A block from the system; `size` is rounded (see rounded()). Big blocks are mappings of
// their own on 2 MiB boundaries, advised onto huge pages where the kernel has them to give,
// and unmapped when freed: from the C library's heap, the advice would stay on memory it
// later reuses for small blocks. (Under AddressSanitizer they come from its allocator, so
// that overflows of big tensors are still caught.)
void* system_allocate(size_t size) {
  if (size < kHugePage) return std::aligned_alloc(kAlignment, size);
  char* p = nullptr;
  if (kSanitized) {
    void* q = nullptr;  // (aligned_alloc would want size to be a multiple of 2 MiB)
    if (posix_memalign(&q, kHugePage, size) != 0) return nullptr;
    p = static_cast<char*>(q);
  } else {
    const size_t span = size + kHugePage;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    char* start = static_cast<char*>(raw);
    p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(start) + kHugePage - 1) &
                                ~uintptr_t{kHugePage - 1});
    if (p > start) munmap(start, static_cast<size_t>(p - start));  // the unaligned head
    if (start + span > p + size) munmap(p + size, static_cast<size_t>(start + span - (p + size)));
  }
#ifdef MADV_HUGEPAGE
  // Advice only: a kernel without huge pages refuses it and the block stays as it is.
  madvise(p, size / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  return p;
}

void system_free(void* ptr, size_t size) {
  if (size < kHugePage || kSanitized) {
    std::free(ptr);
  } else {
    munmap(ptr, size);
  }
}

// Free blocks by size, evicted least recently freed first: when the working set changes
// (training at batch 128, then evaluating at batch 500), the new sizes replace the old
// ones instead of finding the cache full and going to the system on every call.
struct Cache {
  struct Block {
    size_t size;
    void* ptr;
  };
  std::mutex mutex;
  std::list<Block> recency;  // most recently freed first
  std::multimap<size_t, std::list<Block>::iterator> by_size;
  size_t cached = 0;
  size_t limit = default_limit();

  ~Cache() { release_all(); }
  void release_all() {
    for (Block& b : recency) system_free(b.ptr, b.size);
    recency.clear();
    by_size.clear();
    cached = 0;
  }
  void* take(size_t size) {
    auto it = by_size.find(size);
    if (it == by_size.end()) return nullptr;
    void* p = it->second->ptr;
    recency.erase(it->second);
    by_size.erase(it);
    cached -= size;
    return p;
  }
  void put(size_t size, void* ptr) {
    recency.push_front({size, ptr});
    by_size.emplace(size, recency.begin());
    cached += size;
    trim();
  }
  // Frees the least recently freed blocks until the cache fits its limit.
  void trim() {
    while (cached > limit && !recency.empty()) {
      auto last = std::prev(recency.end());
      auto [lo, hi] = by_size.equal_range(last->size);
      for (auto it = lo; it != hi; ++it) {
        if (it->second == last) {
          by_size.erase(it);
          break;
        }
      }
      cached -= last->size;
      system_free(last->ptr, last->size);
      recency.erase(last);
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destructors
  return *c;
}

size_t rounded(size_t nbytes) {
  size_t r = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (r >= kCacheMinBytes) r = (r + kPage - 1) / kPage * kPage;
  return r == 0 ? kAlignment : r;
}

}  // namespace

static std::atomic<int64_t> allocation_calls{0};
int64_t host_allocation_count() { return allocation_calls.load(std::memory_order_relaxed); }

// Physical memory: a request beyond it (a hostile file's huge dims) is an error, not a
// crash or an abort under the sanitizers.
size_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : SIZE_MAX;
}

void* allocate_host(size_t nbytes) {
  static const size_t memory = physical_memory_bytes();
  if (nbytes > memory) {
    fail("allocate", "a tensor of ", nbytes, " bytes is larger than this machine's memory (",
         memory, " bytes)");
  }
  allocation_calls.fetch_add(1, std::memory_order_relaxed);
  size_t size = rounded(nbytes);
  if (size >= kCacheMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (void* p = c.take(size)) return p;
  }
  void* p = system_allocate(size);
  if (!p) {
    empty_host_cache();
    p = system_allocate(size);
    if (!p) throw std::bad_alloc();
  }
  return p;
}

void free_host(void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t size = rounded(nbytes);
  if (size >= kCacheMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (size <= kCacheMaxBlockBytes && size <= c.limit) {
      c.put(size, ptr);
      return;
    }
  }
  system_free(ptr, size);
}

size_t cached_host_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.cached;
}

void empty_host_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.release_all();
}

void set_host_cache_limit(size_t nbytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = nbytes;
  c.trim();
}

}  // namespace tessera
