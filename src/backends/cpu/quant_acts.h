// Activation rows quantized to 8 bits, once per linear call, so that quantized weights are
// multiplied with integer dot products (as llama.cpp does: q8_0 blocks of 32 for Q4_0 / Q8_0
// weights, q8_K super-blocks of 256 with block sums for the K formats). The layouts are chosen
// for the kernels (quant_kernels.h), not for storage: every kernel set reads these arrays.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace unicorn::cpu {

struct QuantActs {
  DType weight = DType::Q8_0;  // the weight format these rows were quantized for
  int64_t rows = 0, k = 0;
  // Activation blocks per row: 32-value blocks rounded up to an even count (kernels work on
  // pairs; the padding is zeros), or 256-value super-blocks for the K formats.
  int64_t blocks = 0;
  int64_t row_qs = 0;  // bytes of qs per row (blocks * block values)

  int8_t* qs = nullptr;  // [rows, row_qs] round(x / d). Q4_K: each 128 values stored in the
                         // order 0-31, 64-95, 32-63, 96-127 (the order its nibbles unpack in)
  float* d = nullptr;    // [rows, blocks] scale: x ~= d * q
  // 32-value formats: [rows, blocks] = zero_point * sum(q) over the block, the correction for
  // weights stored with an unsigned offset (Q4_0: -8; Q8_0 read as q + 128: -128).
  // Q6_K: [rows, blocks * 16] = -32 * sum(q) over each 16 values (its weights are q6 - 32).
  int32_t* bias = nullptr;
  // K formats: [rows, blocks * 16] sums of q. Q6_K: over each 16 values; Q4_K: over each 32
  // values (first 8 entries, the rest zero).
  int16_t* bsums = nullptr;
  // Q4_K: [rows, blocks * 8] the same sums per 32 values as f32 (broadcast by the kernels).
  float* bsums_f = nullptr;
  // 32-value formats, for the AVX-512 kernels: per row and pair of blocks, 16 int32 lanes of
  // bias (lane 0: first block, lane 8: second, others 0) then 16 f32 lanes of d (8 each).
  uint32_t* lanes = nullptr;

  // Sizes the arrays for `rows` rows of k values for weights of dtype `weight`.
  void allocate(DType weight, int64_t rows, int64_t k);

 private:
  std::vector<uint8_t> storage_;
};

// Values per activation block for weights of dtype t (32 or 256); t must be a supported format.
int64_t act_block_values(DType t);
// The weight formats with quantized kernels: Q4_0, Q8_0, Q4_K, Q6_K.
bool quant_kernel_supported(DType t);

// Quantizes rows [r0, r1) of x ([rows, k] f32) into a (already allocated), portable code.
void quantize_acts_portable(const float* x, int64_t r0, int64_t r1, QuantActs& a);

}  // namespace unicorn::cpu
