// The one exception type of the engine: every failure the user can cause (a bad file, a bad
// argument, a bad request) is an Error whose message says what, where and what was expected.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace unicorn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error with a formatted message: fail("{}: tensor '{}' has shape {}", file, name, s).
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Internal invariant: a broken one is a bug in the engine, not in the input.
#define UNICORN_CHECK(cond)                                                              \
  do {                                                                                   \
    if (!(cond)) ::unicorn::fail("internal error: {} ({}:{})", #cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace unicorn
