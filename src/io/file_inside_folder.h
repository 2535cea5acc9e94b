// Opening a file that another file names (ONNX external data): the name comes from whoever
// wrote the model, so it may only reach a regular file inside the model's folder
// (internal, not installed).
#pragma once
#include <cstdint>
#include <string>

#include "posix_file.h"

namespace tessera::io::detail {

// A regular file opened for reading, with its size as fstat saw it on the open descriptor.
struct FileInsideFolder {
  UniqueFd fd;
  int64_t size = 0;
  std::string path;  // folder/relative, for messages
};

// Opens `relative` inside `folder` for reading. The path is resolved one component at a
// time from a descriptor of the folder, refusing a symbolic link anywhere on the way
// (O_NOFOLLOW), `..` above the folder, a NUL byte, an absolute path, and anything but a
// regular file (checked with fstat on the descriptor that is then read, so a file swapped
// after the check is never read). The realpath of the result must also lie inside the
// realpath of the folder and be the opened file. Errors are tessera::Error from `op`, with
// `subject` (e.g. "tensor 'w': external data") and the path in the message.
FileInsideFolder open_file_inside_folder(const std::string& folder, const std::string& relative,
                                         const std::string& op, const std::string& subject);

// Reads [offset, offset + length) of a file opened above into `dst`; a file that shrank
// since it was opened is an error, not a short read.
void read_file_range(const FileInsideFolder& file, int64_t offset, int64_t length, void* dst,
                     const std::string& op, const std::string& subject);

}  // namespace tessera::io::detail
