#include "server/base64.h"

#include <array>
#include <cstdint>

#include "core/error.h"

namespace unicorn::server {

namespace {

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[uint8_t(alphabet[i])] = int8_t(i);
  return t;
}
constexpr std::array<int8_t, 256> kTable = make_table();

bool is_skipped_space(char c) { return c == '\r' || c == '\n' || c == ' ' || c == '\t'; }

}  // namespace

std::string decode_base64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0, symbols = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_skipped_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int8_t v = kTable[uint8_t(c)];
    if (v < 0) {
      const bool printable = uint8_t(c) >= 0x20 && uint8_t(c) < 0x7f;
      fail("invalid base64: character {} at offset {} is not in the base64 alphabet",
           printable ? fmt::format("'{}'", c) : fmt::format("0x{:02x}", uint8_t(c)), i);
    }
    if (padding > 0) fail("invalid base64: data after '=' padding at offset {}", i);
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xff));
    }
  }
  // 4n+1 symbols cannot encode whole bytes; padding must complete the last quantum.
  if (symbols % 4 == 1) fail("invalid base64: {} symbols is not a whole number of bytes", symbols);
  if (padding > 2 || (padding > 0 && (symbols + padding) % 4 != 0))
    fail("invalid base64: wrong '=' padding ({} symbols, {} padding characters)", symbols, padding);
  if ((acc & ((1u << bits) - 1)) != 0) fail("invalid base64: the last symbol has bits set past the data");
  return out;
}

}  // namespace unicorn::server
