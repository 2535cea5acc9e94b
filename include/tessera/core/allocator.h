// Host memory for tensors. Large blocks (256 KiB to 64 MiB) are cached after free and
// reused for the next request of the same rounded size: a fresh large block costs a page
// fault per 4 KiB on first touch, which otherwise dominates elementwise ops on big tensors.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

void* allocate_host(size_t nbytes);  // 64-byte aligned; never null (throws bad_alloc)
void free_host(void* ptr, size_t nbytes);

// How many times allocate_host has been called (cache hits included): tests use it to show
// that a code path allocates nothing.
int64_t host_allocation_count();

// Bytes currently held in the cache (not in use by any tensor).
size_t cached_host_bytes();
// Returns all cached blocks to the system.
void empty_host_cache();
// Upper bound on cached bytes (default 256 MiB, or TESSERA_CACHE_MB from the environment).
void set_host_cache_limit(size_t nbytes);

}  // namespace tessera
