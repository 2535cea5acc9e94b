#include "tessera/core/storage.h"

#include "tessera/core/allocator.h"

namespace tessera {

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  if (nbytes <= kInlineBytes) {
    uintptr_t p = reinterpret_cast<uintptr_t>(inline_);
    data_ = reinterpret_cast<void*>((p + kAlignment - 1) & ~(kAlignment - 1));
  } else {
    data_ = allocate_host(nbytes);
  }
}

Storage::~Storage() {
  if (nbytes_ > kInlineBytes) free_host(data_, nbytes_);
}

}  // namespace tessera
