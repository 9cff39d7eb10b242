#include "core/dtype.h"

#include <array>
#include <cmath>

#include "core/error.h"

namespace unicorn {

namespace {
constexpr std::array<DTypeInfo, 26> kInfos = {{
    {"F32", 1, 4, true},
    {"F16", 1, 2, true},
    {"BF16", 1, 2, true},
    {"F64", 1, 8, true},
    {"I64", 1, 8, false},
    {"I32", 1, 4, false},
    {"I16", 1, 2, false},
    {"I8", 1, 1, false},
    {"U8", 1, 1, false},
    {"BOOL", 1, 1, false},
    {"Q4_0", 32, 18, true},
    {"Q8_0", 32, 34, true},
    {"Q4_K", 256, 144, true},
    {"Q6_K", 256, 210, true},
    {"NF4", 2, 1, true},  // two 4-bit codes a byte; scales live in nf4::State
    {"Q4_1", 32, 20, true},
    {"Q5_0", 32, 22, true},
    {"Q5_1", 32, 24, true},
    {"Q2_K", 256, 84, true},
    {"Q3_K", 256, 110, true},
    {"Q5_K", 256, 176, true},
    {"IQ4_NL", 32, 18, true},
    {"Q4_0_X16", 32, 18, true},
    {"Q8_0_X16", 32, 34, true},
    {"Q4_K_X16", 256, 144, true},
    {"Q6_K_X16", 256, 210, true},
}};
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfos.at(static_cast<size_t>(t)); }

int64_t dtype_bytes(DType t, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  UNICORN_CHECK(n % info.block_elems == 0);
  return n / info.block_elems * info.block_bytes;
}

DType dtype_from_safetensors(std::string_view s, std::string_view where) {
  // Only the types a safetensors file can hold.
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32,
                  DType::I16, DType::I8, DType::U8, DType::BOOL}) {
    if (dtype_info(t).name == s) return t;
  }
  fail("{}: unknown dtype '{}' (expected one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)",
       where, s);
}

std::string_view dtype_to_safetensors(DType t) {
  if (is_block_format(t)) fail("dtype {} cannot be stored as a safetensors element type", dtype_name(t));
  return dtype_name(t);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(float(mant), -24);
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00);  // NaN
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // overflow (rounds to) inf
  if (absx < 0x38800000u) {  // subnormal or zero in half precision: round to nearest even
    float a;
    std::memcpy(&a, &absx, 4);
    const float scaled = a * 16777216.0f;  // 2^24: units of the smallest subnormal
    return uint16_t(sign | uint16_t(std::nearbyint(scaled)));
  }
  // Normal: rebias the exponent and round the mantissa to nearest even.
  uint32_t r = absx - 0x38000000u;
  r += 0x0fffu + ((r >> 13) & 1u);
  return uint16_t(sign | uint16_t(r >> 13));
}

}  // namespace unicorn
