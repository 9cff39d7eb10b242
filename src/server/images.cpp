#include "server/images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "server/api_error.h"
#include "server/base64.h"

namespace unicorn::server {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == prefix;
}

// A short, printable rendering of a client's URL for error messages.
std::string shown(std::string_view url) {
  std::string s(url.substr(0, 80));
  for (char& c : s)
    if (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f) c = '?';
  return url.size() > 80 ? s + "..." : s;
}

// data:[<media type>][;base64],<data>
std::string from_data_uri(std::string_view uri, std::string_view where) {
  const size_t comma = uri.find(',');
  if (comma == std::string_view::npos)
    fail_request(std::string(where), "{}: a data: URI needs a ',' before its data", where);
  const std::string header = lower(uri.substr(5, comma - 5));
  const bool base64 = header.size() >= 7 && header.compare(header.size() - 7, 7, ";base64") == 0;
  const std::string media = header.substr(0, header.find(';'));
  if (!base64)
    fail_request(std::string(where), "{}: only base64 data: URIs are accepted (data:image/png;base64,...)", where);
  static constexpr std::string_view kTypes[] = {"image/png", "image/jpeg", "image/jpg", "image/webp"};
  if (std::find(std::begin(kTypes), std::end(kTypes), media) == std::end(kTypes))
    fail_request(std::string(where), "{}: unsupported image type '{}' (expected image/png, image/jpeg or image/webp)",
                 where, media.empty() ? "none" : media);
  try {
    return decode_base64(uri.substr(comma + 1));
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    fail_request(std::string(where), "{}: {}", where, e.what());
  }
}

std::string percent_decode(std::string_view s, std::string_view where) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || !std::isxdigit(uint8_t(s[i + 1])) || !std::isxdigit(uint8_t(s[i + 2])))
      fail_request(std::string(where), "{}: bad percent escape in file URL", where);
    out.push_back(char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  if (out.find('\0') != std::string::npos) fail_request(std::string(where), "{}: file path contains a NUL byte", where);
  return out;
}

bool inside(const fs::path& path, const fs::path& dir) {
  auto p = path.begin(), d = dir.begin();
  for (; d != dir.end(); ++d, ++p)
    if (p == path.end() || *p != *d) return false;
  return p != path.end();  // strictly below the directory
}

std::string from_local_file(std::string_view url, const ImagePolicy& policy, std::string_view where) {
  const std::string param(where);
  if (policy.local_dir.empty())
    fail_request(param,
                 "{}: local image files are not allowed (the server was started without --allow-local-images DIR); "
                 "send the image as a data: URI",
                 where);
  std::string path;
  if (starts_with_ci(url, "file://")) {
    std::string_view rest = url.substr(7);
    if (starts_with_ci(rest, "localhost/")) rest.remove_prefix(9);
    if (rest.empty() || rest[0] != '/')
      fail_request(param, "{}: a file URL must be file:///absolute/path, got '{}'", where, shown(url));
    path = percent_decode(rest, where);
  } else {
    path = std::string(url);
    if (path.find('\0') != std::string::npos) fail_request(param, "{}: file path contains a NUL byte", where);
  }
  const fs::path dir(policy.local_dir);
  fs::path p(path);
  if (p.is_relative()) p = dir / p;
  std::error_code ec;
  // canonical() resolves every symlink and "..": what is checked is the file that is read.
  const fs::path real = fs::canonical(p, ec);
  if (ec) fail_request(param, "{}: image file '{}' not found under the allowed directory", where, shown(path));
  if (!inside(real, dir))
    fail_request(param, "{}: image file '{}' is outside the allowed directory {}", where, shown(path), dir.string());
  // O_NOFOLLOW: a symlink swapped in after the check is not followed.
  const int fd = ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail_request(param, "{}: cannot open image file '{}'", where, shown(path));
  struct stat st {};
  std::string bytes;
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (regular && size_t(st.st_size) <= policy.max_bytes) {
    bytes.resize(size_t(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (n <= 0) break;
      got += size_t(n);
    }
    bytes.resize(got);
  }
  ::close(fd);
  if (!regular) fail_request(param, "{}: '{}' is not a regular file", where, shown(path));
  if (size_t(st.st_size) > policy.max_bytes)
    fail_request(param, "{}: image file '{}' has {} bytes, over the limit of {}", where, shown(path), st.st_size,
                 policy.max_bytes);
  return bytes;
}

}  // namespace

ImagePolicy make_image_policy(const std::string& local_dir, size_t max_bytes) {
  ImagePolicy p;
  p.max_bytes = max_bytes;
  if (local_dir.empty()) return p;
  std::error_code ec;
  const fs::path real = fs::canonical(local_dir, ec);
  if (ec || !fs::is_directory(real, ec)) fail("--allow-local-images: '{}' is not a directory", local_dir);
  p.local_dir = real.string();
  return p;
}

std::string image_bytes(std::string_view url, const ImagePolicy& policy, std::string_view where) {
  const std::string param(where);
  if (url.empty())
    fail_request(param, "{}: the image has no URL; send {{\"type\": \"image_url\", \"image_url\": {{\"url\": "
                        "\"data:image/png;base64,...\"}}}}", where);
  if (starts_with_ci(url, "data:")) return from_data_uri(url, where);
  if (starts_with_ci(url, "http://") || starts_with_ci(url, "https://"))
    fail_request(param,
                 "{}: remote image URLs are not fetched (this server makes no network requests): '{}'; send the "
                 "image as a data: URI (data:image/png;base64,...)",
                 where, shown(url));
  const size_t colon = url.find(':');
  const size_t slash = url.find('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash) &&
      !starts_with_ci(url, "file:"))
    fail_request(param, "{}: unsupported image URL scheme in '{}' (expected a data: URI)", where, shown(url));
  return from_local_file(url, policy, where);
}

}  // namespace unicorn::server
