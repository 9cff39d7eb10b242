// NF4: bitsandbytes' 4-bit NormalFloat format. The flattened weight is split into blocks of
// 64 values; each value is the index of the nearest of 16 fixed levels (quant_map) after
// dividing by the block's absmax. Codes are packed two to a byte, the first value in the
// high nibble. With double quantization the per-block absmax are themselves quantized:
// (absmax - offset) in blocks of 256 to 8 bits with bitsandbytes' signed dynamic map.
// Blocks run over the flattened tensor, so they may straddle rows (SigLIP's 4304-wide MLP).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace unicorn::nf4 {

// ref: bitsandbytes functional.py get_4bit_type("nf4")
extern const std::array<float, 16> kLevels;

// The quantization state beside the packed codes of one NF4 tensor.
struct State final : TensorAux {
  int64_t blocksize = 64;
  std::vector<float> quant_map;  // [16] the levels (as stored; normally kLevels)
  bool nested = true;
  // Without nesting: absmax [blocks]. With nesting: qabsmax [blocks] (indices into
  // nested_code), nested_absmax [ceil(blocks / nested_blocksize)], offset.
  std::vector<float> absmax;
  std::vector<uint8_t> qabsmax;
  std::vector<float> nested_absmax;
  std::vector<float> nested_code;  // [256]
  int64_t nested_blocksize = 256;
  float offset = 0.0f;
  DType original_dtype = DType::BF16;  // what the weights were before quantizing

  int64_t blocks() const { return nested ? int64_t(qabsmax.size()) : int64_t(absmax.size()); }
  // The absmax of block b, after undoing the double quantization.
  float block_absmax(int64_t b) const {
    if (!nested) return absmax[size_t(b)];
    return nested_code[qabsmax[size_t(b)]] * nested_absmax[size_t(b / nested_blocksize)] + offset;
  }
  int64_t bytes() const;  // memory held by the state
};

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): the 256
// levels used for the nested absmax.
std::vector<float> dynamic_map_signed();

// Quantizes n values (the flattened tensor) as bitsandbytes' quantize_4bit(quant_type="nf4",
// compress_statistics=nested) does. Returns the packed codes (n / 2 bytes; n must be even).
struct Quantized {
  std::vector<uint8_t> codes;
  State state;
};
Quantized quantize(std::span<const float> values, bool nested = true, int64_t blocksize = 64);

// A [rows, cols] NF4 tensor from bf16/f16/f32 weights (codes owned by the tensor, state as aux).
Tensor quantize_tensor(const Tensor& weights, bool nested = true);
// The state of an NF4 tensor; Error if it has none.
const State& state_of(const Tensor& t);

// Values [start, start + count) of the flattened tensor as f32.
void dequantize(const uint8_t* codes, const State& state, int64_t start, int64_t count, float* out);
// The same without SIMD (what dequantize uses for partial blocks and on other CPUs).
void dequantize_scalar(const uint8_t* codes, const State& state, int64_t start, int64_t count, float* out);

}  // namespace unicorn::nf4
