#include "formats/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace unicorn {

namespace {

// zlib's error text for a gzFile, or errno's when zlib says the error is a system one.
std::string gz_message(gzFile f) {
  int code = Z_OK;
  const char* msg = gzerror(f, &code);
  if (code == Z_ERRNO) return std::strerror(errno);
  return msg ? msg : "unknown zlib error";
}

}  // namespace

std::string read_gzip_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open: {}", path, errno ? std::strerror(errno) : "out of memory");
  // Plain files read through unchanged with gzread ("transparent" mode): insist on the
  // gzip header so a misnamed file is reported rather than parsed as if decompressed.
  gzbuffer(f, 1 << 17);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      const std::string msg = gz_message(f);
      gzclose(f);
      fail("{}: corrupt gzip data: {}", path, msg);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  const bool plain = gzdirect(f) != 0;
  // gzread returns 0 both at the end and when the file stops mid-stream; gzclose_r reports
  // the truncation (Z_BUF_ERROR).
  const int rc = gzclose_r(f);
  if (plain) fail("{}: not a gzip file (no gzip header)", path);
  if (rc == Z_BUF_ERROR) fail("{}: truncated gzip data (the file ends in the middle of the stream)", path);
  if (rc != Z_OK) fail("{}: cannot read gzip data (zlib error {})", path, rc);
  return out;
}

void write_gzip_file(const std::string& path, std::string_view data, int level) {
  if (level < 1 || level > 9) fail("{}: gzip level must be 1 to 9, got {}", path, level);
  const std::string mode = "wb" + std::to_string(level);
  gzFile f = gzopen(path.c_str(), mode.c_str());
  if (!f) fail("{}: cannot create: {}", path, errno ? std::strerror(errno) : "out of memory");
  size_t done = 0;
  while (done < data.size()) {
    const unsigned chunk = unsigned(std::min<size_t>(data.size() - done, 1u << 30));
    if (gzwrite(f, data.data() + done, chunk) != int(chunk)) {
      const std::string msg = gz_message(f);
      gzclose(f);
      fail("{}: write error: {}", path, msg);
    }
    done += chunk;
  }
  if (gzclose(f) != Z_OK) fail("{}: write error while closing", path);
}

}  // namespace unicorn
