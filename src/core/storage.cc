#include "tessera/core/storage.h"

#include <cstdlib>
#include <new>

namespace tessera {

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

}  // namespace tessera
