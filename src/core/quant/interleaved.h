// Interleaved layouts of Q4_0 and Q8_0 matrices (DType Q4_0_X16, Q8_0_X16), made once at
// load by the CPU backend: its integer kernels then hold 16 weight rows in the 16 int32
// lanes of a zmm register, so one vpdpbusd advances 16 dot products and one f16 load gives
// 16 block scales (llama.cpp's repacked Q4_0 layouts serve the same purpose).
//
// A [rows, cols] matrix (nb = cols / 32 blocks a row) is stored as rows / 16 groups of 16
// rows, then the last rows % 16 rows as plain ggml rows. Group g, block b sits at byte
// (g * nb + b) * 16 * block_bytes:
//   16 f16 scales, row 16g + i at index i; then
//   Q4_0: 4 chunks of 64 bytes; byte 4i + u of chunk j holds row i's quant 4j + u in its low
//         nibble and quant 16 + 4j + u in its high nibble;
//   Q8_0: 8 chunks of 64 bytes; byte 4i + u of chunk t is row i's quant 4t + u.
// Rows are not contiguous, so Tensor::rows() views do not apply; dequantize_row does.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace unicorn {

constexpr int64_t kInterleaveRows = 16;

bool is_interleaved(DType t);
// Q4_0 -> Q4_0_X16, Q8_0 -> Q8_0_X16; Error for other types.
DType interleaved_of(DType plain);
// Q4_0_X16 -> Q4_0, Q8_0_X16 -> Q8_0; Error for other types.
DType plain_of(DType interleaved);

// The interleaved copy of a Q4_0 or Q8_0 matrix.
Tensor interleave_rows(const Tensor& matrix);
// Row `row` of an interleaved matrix as f32, equal to ggml's dequantization of that row.
void dequantize_interleaved_row(const Tensor& w, int64_t row, float* out);

}  // namespace unicorn
