// Resolving a file name found inside a model without leaving the model's folder: every
// component is opened from its parent's descriptor with O_NOFOLLOW, so no symbolic link,
// however it is spelled and whenever it appears, is ever followed.
#include "file_inside_folder.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "tessera/core/error.h"

namespace tessera::io::detail {
namespace {

// realpath(3) as a string; empty when the path cannot be resolved.
std::string resolved_path(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> buffer(::realpath(path.c_str(), nullptr), &std::free);
  return buffer ? std::string(buffer.get()) : std::string();
}

bool lies_inside(const std::string& path, const std::string& root) {
  if (root == "/") return !path.empty() && path[0] == '/';
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
         path[root.size()] == '/';
}

// The components of a relative path, in order ("a//./b" -> a, b; empty ones and "." dropped).
std::vector<std::string> components(const std::string& relative) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    // "." names the folder it is in: dropped here (a name of PATH_MAX at most).
    if (end > start && relative.compare(start, end - start, ".") != 0) {
      parts.push_back(relative.substr(start, end - start));
    }
    start = end + 1;
  }
  return parts;
}

// The error for a refused name; the name may hold a NUL, so what precedes it is printed.
[[noreturn]] void refuse_name(const std::string& op, const std::string& subject,
                              const std::string& relative, const std::string& why) {
  fail(op, subject, " path '", relative.substr(0, relative.find('\0')), "' ", why);
}

bool is_symlink_at(int dir_fd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

}  // namespace

FileInsideFolder open_file_inside_folder(const std::string& folder, const std::string& relative,
                                         const std::string& op, const std::string& subject) {
  FileInsideFolder file;
  file.path = folder + "/" + relative;
  auto refuse = [&](const std::string& why) { refuse_name(op, subject, relative, why); };
  if (relative.find('\0') != std::string::npos) refuse("contains a NUL byte");
  if (relative.empty()) refuse("is empty");
  if (relative.size() > PATH_MAX) refuse("is longer than PATH_MAX");
  if (relative[0] == '/') refuse("must be relative to the model's folder");
  const std::string root = resolved_path(folder);
  if (root.empty()) refuse("cannot be resolved: the folder " + folder + " is not readable");

  // A stack of open folders from the root down; ".." pops one and may not pop the root.
  std::vector<UniqueFd> dirs;
  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) refuse("cannot be resolved: " + errno_text(errno));
  dirs.push_back(std::move(root_fd));
  std::vector<std::string> canonical;  // the components below the root, resolved
  std::vector<std::string> parts = components(relative);
  const std::string last = relative.substr(relative.rfind('/') + 1);  // all when no '/'
  const bool names_a_folder = parts.empty() || last.empty() || last == "." || last == "..";
  if (names_a_folder) refuse("names a folder, not a regular file");
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part == "..") {
      if (dirs.size() == 1) refuse("leaves the model's folder");
      dirs.pop_back();
      canonical.pop_back();
      continue;
    }
    UniqueFd fd(
        ::openat(dirs.back().get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
      int err = errno;
      if (is_symlink_at(dirs.back().get(), part))
        refuse("passes through a symbolic link ('" + part + "')");
      if (err == ENOENT) refuse("does not exist (no folder '" + part + "')");
      if (err == ENOTDIR) refuse("does not exist ('" + part + "' is not a folder)");
      refuse("cannot be opened: " + errno_text(err));
    }
    dirs.push_back(std::move(fd));
    canonical.push_back(part);
  }
  const std::string& name = parts.back();
  struct stat st {};
  // A first look without opening, so that a device or FIFO is never opened at all.
  if (::fstatat(dirs.back().get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    refuse(errno == ENOENT ? std::string("does not exist")
                           : "cannot be read: " + errno_text(errno));
  }
  if (S_ISLNK(st.st_mode)) refuse("is a symbolic link");
  if (!S_ISREG(st.st_mode)) refuse("is not a regular file (a folder, device, FIFO or socket)");
  // O_NONBLOCK: should a FIFO take the file's place after the look, opening it does not hang.
  file.fd = UniqueFd(::openat(dirs.back().get(), name.c_str(),
                              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (file.fd.get() < 0) {
    refuse(errno == ELOOP ? std::string("is a symbolic link")
                          : "cannot be opened: " + errno_text(errno));
  }
  // What counts is the descriptor that will be read.
  if (::fstat(file.fd.get(), &st) != 0) refuse("cannot be read: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) refuse("is not a regular file (a folder, device, FIFO or socket)");
  canonical.push_back(name);
  std::string joined = root;
  for (const std::string& part : canonical) joined += (joined == "/" ? "" : "/") + part;
  const std::string resolved = resolved_path(joined);
  struct stat resolved_st {};
  if (!lies_inside(resolved, root)) refuse("leaves the model's folder");
  if (::stat(resolved.c_str(), &resolved_st) != 0 || resolved_st.st_dev != st.st_dev ||
      resolved_st.st_ino != st.st_ino) {
    refuse("changed while it was being opened");
  }
  file.size = static_cast<int64_t>(st.st_size);
  return file;
}

void read_file_range(const FileInsideFolder& file, int64_t offset, int64_t length, void* dst,
                     const std::string& op, const std::string& subject) {
  check(offset >= 0 && length >= 0 && offset <= file.size && length <= file.size - offset, op,
        subject, " [", offset, ", +", length, ") lies outside ", file.path, " (", file.size,
        " bytes)");
  int64_t got =
      pread_full(file.fd.get(), dst, static_cast<uint64_t>(length), static_cast<uint64_t>(offset));
  check(got >= 0, op, subject, ": cannot read ", file.path, ": ", errno_text(errno));
  check(got == length, op, subject, ": ", file.path, " shrank while it was being read (", got,
        " of ", length, " bytes at offset ", offset, ")");
}

}  // namespace tessera::io::detail
