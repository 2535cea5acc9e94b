// Whole-file reads, with gzip members inflated in memory (zlib), for the file readers.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "internal.h"
#include "tessera/core/error.h"

namespace tessera::data::detail {
namespace {

std::vector<unsigned char> read_raw(const std::string& path, const char* op) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  check(f != nullptr, op, path, ": cannot open: ", std::strerror(errno));
  std::vector<unsigned char> bytes;
  unsigned char chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f.get())) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  check(!std::ferror(f.get()), op, path, ": read error after ", bytes.size(), " bytes");
  return bytes;
}

// Inflates one or more concatenated gzip members.
std::vector<unsigned char> gunzip(const std::vector<unsigned char>& in, const std::string& path,
                                  const char* op) {
  std::vector<unsigned char> out;
  out.reserve(in.size() * 4);
  size_t pos = 0;
  while (pos < in.size()) {
    check(in.size() - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b, op, path,
          ": unexpected bytes after the gzip stream at offset ", pos);
    z_stream z{};
    check(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, op, path, ": zlib init failed");
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, &inflateEnd);
    z.next_in = const_cast<Bytef*>(in.data() + pos);
    // zlib counts in uInt: feed very large files in pieces.
    size_t left = in.size() - pos;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      if (z.avail_in == 0) {
        check(left > 0, op, path, ": truncated gzip stream at compressed offset ", in.size(), " (",
              out.size(), " bytes inflated)");
        z.avail_in = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
        left -= z.avail_in;
      }
      unsigned char buf[1 << 16];
      z.next_out = buf;
      z.avail_out = sizeof buf;
      rc = inflate(&z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        fail(op, path, ": corrupt gzip stream at compressed offset ", pos + z.total_in, ": ",
             z.msg ? z.msg : zError(rc));
      }
      out.insert(out.end(), buf, buf + (sizeof buf - z.avail_out));
      if (rc == Z_BUF_ERROR && z.avail_in != 0) {
        fail(op, path, ": gzip stream stalled at compressed offset ", pos + z.total_in);
      }
    }
    pos += z.total_in;
  }
  return out;
}

}  // namespace

std::vector<unsigned char> read_file_bytes(const std::string& path, const char* op,
                                           bool gunzip_if_gzip) {
  std::vector<unsigned char> bytes = read_raw(path, op);
  if (gunzip_if_gzip && bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    return gunzip(bytes, path, op);
  }
  return bytes;
}

}  // namespace tessera::data::detail
