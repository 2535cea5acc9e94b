#include "tessera/core/storage.h"

#include "tessera/core/allocator.h"

namespace tessera {

Storage::Storage(size_t nbytes) : data_(allocate_host(nbytes)), nbytes_(nbytes) {}

Storage::~Storage() { free_host(data_, nbytes_); }

}  // namespace tessera
