// UTF-8 helpers for the tokenizer: validation with the offset of the first bad byte (so an
// error can say where the input is broken), code point iteration, and the length of the
// longest prefix that holds only whole characters (for streaming output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unicorn::utf8 {

// Sentinel for "the whole input is valid".
inline constexpr size_t kValid = size_t(-1);

// Offset of the first sequence that is not well-formed UTF-8 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or kValid. Like Python's decoder, the offset is
// where the bad sequence starts.
size_t find_invalid(std::string_view s);

// Throws Error "<what>: invalid UTF-8 at byte N (...)" when `s` is not well-formed.
void require_valid(std::string_view s, std::string_view what);

// Length in bytes of the well-formed character that starts at s[pos] (1 to 4), or 0 when
// the bytes there are not one. `cp` receives the code point.
size_t decode_one(std::string_view s, size_t pos, uint32_t& cp);

// Appends the UTF-8 encoding of a code point (must be a valid scalar value).
void append(std::string& out, uint32_t cp);

// Splits a byte buffer for streaming: returns how many leading bytes can be emitted now.
// Well-formed characters are emitted; a truncated but still possible sequence at the end is
// held back; a byte that can never become part of a character is reported through
// `bad_at` (offset) so the caller can replace it, and the emitted prefix stops before it.
size_t complete_prefix(std::string_view s, size_t& bad_at);

}  // namespace unicorn::utf8
