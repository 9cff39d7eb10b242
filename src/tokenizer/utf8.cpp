#include "tokenizer/utf8.h"

#include "core/error.h"

namespace unicorn::utf8 {

namespace {

// Result of looking at the bytes at one position.
enum class Seq { Complete, Truncated, Invalid };

// Classifies the sequence at s[pos]: a whole well-formed character (its length in `len`),
// the start of one cut off by the end of `s`, or bytes that can never be well-formed.
// ref: Unicode 15 Table 3-7 (well-formed UTF-8 byte sequences).
Seq classify(std::string_view s, size_t pos, size_t& len, uint32_t& cp) {
  const auto b0 = uint8_t(s[pos]);
  len = 0;
  if (b0 < 0x80) {
    len = 1;
    cp = b0;
    return Seq::Complete;
  }
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    len = 0;  // the lead byte itself is the bad one
    return Seq::Invalid;
  }
  for (size_t i = 1; i < len; ++i) {
    if (pos + i >= s.size()) {
      len = i;
      return Seq::Truncated;
    }
    const auto b = uint8_t(s[pos + i]);
    const uint8_t min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      len = i;
      return Seq::Invalid;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  return Seq::Complete;
}

}  // namespace

size_t find_invalid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII runs are the common case: skip them 8 bytes at a time.
    while (pos + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + pos, 8);
      if (w & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= s.size()) break;
    size_t len = 0;
    uint32_t cp = 0;
    const Seq k = classify(s, pos, len, cp);
    if (k != Seq::Complete) return pos;
    pos += len;
  }
  return kValid;
}

void require_valid(std::string_view s, std::string_view what) {
  const size_t bad = find_invalid(s);
  if (bad == kValid) return;
  size_t len = 0;
  uint32_t cp = 0;
  const Seq k = classify(s, bad, len, cp);
  const char* why = k == Seq::Truncated ? "the text ends in the middle of a character"
                    : len == 0          ? "this byte cannot start a character"
                                        : "a continuation byte is missing or out of range";
  fail("{}: invalid UTF-8 at byte {} (byte 0x{:02X}: {}); expected text encoded as UTF-8", what, bad,
       uint8_t(s[bad]), why);
}

size_t decode_one(std::string_view s, size_t pos, uint32_t& cp) {
  size_t len = 0;
  return classify(s, pos, len, cp) == Seq::Complete ? len : 0;
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

size_t complete_prefix(std::string_view s, size_t& bad_at) {
  bad_at = kValid;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 0;
    uint32_t cp = 0;
    const Seq k = classify(s, pos, len, cp);
    if (k == Seq::Truncated) return pos;
    if (k == Seq::Invalid) {
      bad_at = pos;
      return pos;
    }
    pos += len;
  }
  return pos;
}

}  // namespace unicorn::utf8
