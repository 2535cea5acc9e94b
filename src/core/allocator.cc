#include "tessera/core/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace tessera {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kCacheMinBytes = 256 * 1024;  // smaller blocks: malloc is already fast
// Bigger blocks are rare (whole datasets, not per-step temporaries) and would pin their
// memory for the life of the process.
constexpr size_t kCacheMaxBlockBytes = size_t{64} << 20;
constexpr size_t kPage = 4096;

size_t default_limit() {
  const char* env = std::getenv("TESSERA_CACHE_MB");
  // 256 MiB holds a training step's temporaries for mid-sized models without pinning much.
  return env ? static_cast<size_t>(std::atoll(env)) << 20 : size_t{256} << 20;
}

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  size_t cached = 0;
  size_t limit = default_limit();

  ~Cache() { release_all(); }
  void release_all() {
    for (auto& [size, ptr] : free_blocks) std::free(ptr);
    free_blocks.clear();
    cached = 0;
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

void* allocate_host(size_t nbytes) {
  size_t size = rounded(nbytes);
  if (size >= kCacheMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(size);
    if (it != c.free_blocks.end()) {
      void* p = it->second;
      c.free_blocks.erase(it);
      c.cached -= size;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlignment, size);
  if (!p) {
    empty_host_cache();
    p = std::aligned_alloc(kAlignment, size);
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
    if (size <= kCacheMaxBlockBytes && c.cached + size <= c.limit) {
      c.free_blocks.emplace(size, ptr);
      c.cached += size;
      return;
    }
  }
  std::free(ptr);
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
  while (c.cached > c.limit && !c.free_blocks.empty()) {
    auto it = std::prev(c.free_blocks.end());
    c.cached -= it->first;
    std::free(it->second);
    c.free_blocks.erase(it);
  }
}

}  // namespace tessera
