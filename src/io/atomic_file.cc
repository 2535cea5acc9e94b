#include "tessera/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <streambuf>
#include <vector>

#include "posix_file.h"
#include "tessera/core/error.h"

namespace tessera::io {

namespace {

using detail::errno_text;
using detail::UniqueFd;

// An output streambuf over a file descriptor that remembers the errno of the first failed
// write, so the error can say why (std::ofstream loses it).
class FdWriteBuf : public std::streambuf {
 public:
  explicit FdWriteBuf(int fd) : fd_(fd), buf_(1 << 16) { reset(); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!flush_buffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }

  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (error_ != 0 || n <= 0) return 0;
    if (n < epptr() - pptr()) {
      std::memcpy(pptr(), s, static_cast<size_t>(n));
      pbump(static_cast<int>(n));
      return n;
    }
    // Large writes skip the buffer.
    if (!flush_buffer() || !write_all(s, static_cast<size_t>(n))) return 0;
    return n;
  }

  int sync() override { return flush_buffer() ? 0 : -1; }

 private:
  void reset() { setp(buf_.data(), buf_.data() + buf_.size()); }

  bool write_all(const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, std::min(n, size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  bool flush_buffer() {
    if (error_ != 0) return false;
    size_t n = static_cast<size_t>(pptr() - pbase());
    if (n > 0 && !write_all(pbase(), n)) return false;
    reset();
    return true;
  }

  int fd_;
  std::vector<char> buf_;
  int error_ = 0;
};

std::string parent_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const char* op = "write_file_atomic";
  check(!path.empty(), op, "the path is empty");
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1, std::memory_order_relaxed));

  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0) {
    fail(op, "cannot write '", path, "': creating the temporary file '", tmp,
         "' failed: ", errno_text(errno));
  }
  // From here on every exit without the rename removes the temporary file.
  struct RemoveTemp {
    const std::string& tmp;
    bool armed = true;
    ~RemoveTemp() {
      if (armed) ::unlink(tmp.c_str());
    }
  } remove_temp{tmp};

  struct stat old_stat;
  if (::stat(path.c_str(), &old_stat) == 0 && S_ISREG(old_stat.st_mode)) {
    ::fchmod(fd.get(), old_stat.st_mode & 07777);  // best effort: a checkpoint keeps its mode
  }

  FdWriteBuf buf(fd.get());
  std::ostream os(&buf);
  try {
    write(os);
  } catch (const std::exception& e) {
    fail(op, "writing '", path, "' failed, the previous file is unchanged: ", e.what());
  } catch (...) {
    fail(op, "writing '", path, "' failed, the previous file is unchanged: unknown exception");
  }
  os.flush();
  if (buf.error() != 0) fail(op, "cannot write '", path, "': ", errno_text(buf.error()));
  if (!os) fail(op, "cannot write '", path, "': the writer left the stream in a failed state");
  if (::fsync(fd.get()) != 0) fail(op, "cannot write '", path, "': fsync: ", errno_text(errno));
  if (fd.close() != 0) fail(op, "cannot write '", path, "': close: ", errno_text(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    fail(op, "cannot replace '", path, "' with '", tmp, "': ", errno_text(errno));
  }
  remove_temp.armed = false;

  // The rename is durable only once the directory entry is on disk.
  const std::string dir = parent_directory(path);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  // EINVAL: the file system cannot sync directories, so there is nothing more to do.
  if (dir_fd.get() < 0 || (::fsync(dir_fd.get()) != 0 && errno != EINVAL)) {
    fail(op, "wrote '", path, "', but syncing its directory '", dir,
         "' failed, so the new file may not survive a crash: ", errno_text(errno));
  }
}

void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  write_file_atomic(path, [&](std::ostream& os) {
    os.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  });
}

std::string read_file_bytes(const std::string& path) {
  const char* op = "read_file_bytes";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(op, "cannot open '", path, "': ", errno_text(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail(op, "cannot stat '", path, "': ", errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail(op, "cannot read '", path, "': it is a directory");

  // One allocation of fstat's size, then on to end of file: it may have grown, or be a pipe.
  std::string out(S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 0, '\0');
  auto read_some = [&](char* dst, size_t n) {
    for (;;) {
      ssize_t got = ::read(fd.get(), dst, std::min(n, size_t{1} << 30));
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) fail(op, "cannot read '", path, "': ", errno_text(errno));
    }
  };
  size_t filled = 0;
  while (filled < out.size()) {
    size_t got = read_some(out.data() + filled, out.size() - filled);
    if (got == 0) {
      out.resize(filled);
      return out;
    }
    filled += got;
  }
  char chunk[1 << 16];
  while (size_t got = read_some(chunk, sizeof chunk)) out.append(chunk, got);
  return out;
}

}  // namespace tessera::io
