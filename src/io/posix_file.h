// POSIX file helpers shared by the io/ sources (internal, not installed).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>

namespace tessera::io::detail {

// strerror text, thread-safe.
inline std::string errno_text(int err) { return std::generic_category().message(err); }

// Owns a file descriptor; closes it (ignoring errors) unless released first.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and returns close()'s result (0, or -1 with errno set).
  int close() {
    int fd = fd_;
    fd_ = -1;
    return fd >= 0 ? ::close(fd) : 0;
  }

 private:
  int fd_;
};

// Reads up to n bytes at `offset` into `dst`, retrying short reads. Returns the number of
// bytes read (less than n only at end of file), or -1 with errno set.
inline int64_t pread_full(int fd, void* dst, uint64_t n, uint64_t offset) {
  char* p = static_cast<char*>(dst);
  uint64_t done = 0;
  while (done < n) {
    uint64_t chunk = n - done < (uint64_t{1} << 30) ? n - done : (uint64_t{1} << 30);
    ssize_t got = ::pread(fd, p + done, chunk, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (got == 0) break;
    done += static_cast<uint64_t>(got);
  }
  return static_cast<int64_t>(done);
}

}  // namespace tessera::io::detail
