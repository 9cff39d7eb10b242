// Where a request's images may come from, and their bytes. A server must not become a way to
// read the machine's files or to reach other hosts on a client's behalf, so:
// - data: URIs (data:image/png|jpeg|webp;base64,...) are the normal way in;
// - http(s) URLs are refused (the server fetches nothing from the network);
// - local files (file:// URLs or plain paths) only when the operator named one directory, and
//   then only regular files whose real path (symlinks and ".." resolved) lies inside it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace unicorn::server {

struct ImagePolicy {
  std::string local_dir;            // empty: no local files; else a directory (made canonical)
  size_t max_bytes = 32u << 20;     // largest image file read from disk
};

// Checks and canonicalizes the policy's directory; Error if it is not a directory.
ImagePolicy make_image_policy(const std::string& local_dir, size_t max_bytes);

// The encoded image file (PNG, JPEG or WebP bytes, not yet checked) that `url` names.
// `where` names the request part in errors ("messages[0].content[1]"). Throws ApiError (400)
// for refused sources, bad data URIs and unreadable files.
std::string image_bytes(std::string_view url, const ImagePolicy& policy, std::string_view where);

}  // namespace unicorn::server
