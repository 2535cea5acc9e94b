// Crash-safe file replacement and whole-file reads, for checkpoints and other saved state.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <span>
#include <string>

namespace tessera::io {

// Replaces `path` with what `write` puts into the stream. The bytes go to a temporary file
// beside `path` ("<path>.tmp.<pid>.<n>"), which is fsynced and renamed over `path`, and the
// directory is fsynced: readers, and a machine that crashes, see either the old file or the
// whole new one. On any failure, including an exception thrown by `write`, the temporary file
// is removed, `path` is left as it was, and a tessera::Error naming `path` (and the system's
// reason, where there is one) is thrown. An existing file's permission bits are kept.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

// The whole contents of a file; a tessera::Error naming `path` and the reason on failure.
std::string read_file_bytes(const std::string& path);

}  // namespace tessera::io
