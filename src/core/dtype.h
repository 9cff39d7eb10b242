// Element types and block formats of tensors, and scalar conversions between them.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace unicorn {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I64,
  I32,
  I16,
  I8,
  U8,
  BOOL,
  // Block formats: a row is stored as blocks of block_elems values in block_bytes bytes.
  Q4_0,  // ggml: f16 scale + 32 x 4-bit
  Q8_0,  // ggml: f16 scale + 32 x 8-bit
  Q4_K,  // ggml: 256-value super-blocks with 6-bit sub-block scales and mins
  Q6_K,  // ggml: 256-value super-blocks, 6-bit values, 8-bit sub-block scales
  NF4,   // bitsandbytes: 4-bit NormalFloat codes, two a byte; block scales beside (core/quant/nf4.h)
  // Other ggml block formats, read (dequantized) because llama-quantize writes them as
  // fallbacks for tensors whose rows do not suit the requested type.
  Q4_1,    // f16 scale and min + 32 x 4-bit
  Q5_0,    // f16 scale + 32 x 5-bit
  Q5_1,    // f16 scale and min + 32 x 5-bit
  Q2_K,    // 256-value super-blocks, 2-bit values, 4-bit sub-block scales and mins
  Q3_K,    // 256-value super-blocks, 3-bit values, 6-bit sub-block scales
  Q5_K,    // 256-value super-blocks, 5-bit values, 6-bit sub-block scales and mins
  IQ4_NL,  // f16 scale + 32 x 4-bit indices into a fixed non-linear table
  // The CPU backend's layouts of Q4_0 / Q8_0 / Q4_K / Q6_K for its integer kernels, made once at load
  // (core/quant/interleaved.h): 16 rows' blocks interleaved. Same bytes per row as the ggml format.
  Q4_0_X16,
  Q8_0_X16,
  Q4_K_X16,
  Q6_K_X16,
};

struct DTypeInfo {
  std::string_view name;
  int64_t block_elems;  // 1 for plain element types
  int64_t block_bytes;  // bytes of one element or one block
  bool is_float;        // holds real values (plain float type or a block format)
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline bool is_block_format(DType t) { return dtype_info(t).block_elems > 1; }
// Bytes needed for n elements (n must be a multiple of the block size for block formats).
int64_t dtype_bytes(DType t, int64_t n);
// Parses a safetensors dtype string ("BF16", "F32", ...); throws Error naming `where` if unknown.
DType dtype_from_safetensors(std::string_view s, std::string_view where);
std::string_view dtype_to_safetensors(DType t);

// --- scalar conversions -------------------------------------------------------------------

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace unicorn
