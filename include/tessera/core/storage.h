// Reference-counted, 64-byte-aligned memory shared by a tensor and its views.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tessera {

class Storage {
 public:
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  // Bumped by every in-place write, so autodiff can tell a saved tensor was overwritten.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

  static constexpr size_t kAlignment = 64;
  // Tensors this small keep their bytes inside the Storage object: one allocation
  // per tensor instead of two, which is most of the cost of a tiny op.
  static constexpr size_t kInlineBytes = 64;

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  uint64_t version_ = 0;
  unsigned char inline_[kInlineBytes + kAlignment - 1];  // aligned by hand, not by new
};

}  // namespace tessera
