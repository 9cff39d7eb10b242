// Interleaved layouts of Q4_0, Q8_0, Q4_K and Q6_K matrices (DType *_X16),
// made once at load by the CPU backend: its integer kernels then hold 16 weight rows in the
// 16 int32 lanes of a zmm register, so one vpdpbusd advances 16 dot products and one load
// gives 16 rows' block scales (llama.cpp's repacked Q4_0 layouts serve the same purpose).
//
// A [rows, cols] matrix is stored as rows / 16 groups of 16 rows, then the last rows % 16
// rows as plain ggml rows. The 16 rows' block b of group g sit together at byte
// (g * blocks_per_row + b) * 16 * block_bytes, each field of the ggml block interleaved in
// units: unit u of row i at u_size * i within the field's chunk of 16 units, chunks in order.
//   Q4_0: d (2-byte units), qs (4-byte units: chunk j, low nibbles = values 4j..4j+3,
//         high nibbles = values 16+4j..)
//   Q8_0: d (2-byte units), qs (4-byte units: chunk t = values 4t..4t+3)
//   Q4_K: d, dmin (2-byte units), scales (4-byte units), qs (4-byte units: chunk 8p + t,
//         low nibbles = values 64p + 4t.., high nibbles = values 64p + 32 + 4t..)
//   Q6_K: d (2-byte units), scales (1-byte units: chunk j = sub-block j's scale), ql, qh
//         (4-byte units, as ggml packs them)
// The same bytes per row as the ggml format. Rows are not contiguous, so Tensor::rows()
// views do not apply; dequantize_row does.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace unicorn {

constexpr int64_t kInterleaveRows = 16;

bool is_interleaved(DType t);
// Q4_0 -> Q4_0_X16, Q8_0 -> Q8_0_X16, Q4_K -> Q4_K_X16, Q6_K -> Q6_K_X16; Error otherwise.
DType interleaved_of(DType plain);
// The inverse of interleaved_of; Error for other types.
DType plain_of(DType interleaved);

// The interleaved copy of a Q4_0, Q8_0, Q4_K or Q6_K matrix.
Tensor interleave_rows(const Tensor& matrix);
// The same into `out`: memory the caller allocated, of dtype interleaved_of(matrix.dtype())
// and the matrix's shape.
void interleave_rows_into(const Tensor& matrix, Tensor& out);
// Rows [16 g, 16 g + 16) of group g of an interleaved matrix's bytes `w` (blocks_per_row
// blocks of the plain format each) as plain ggml rows into out (16 * row bytes).
void deinterleave_group(DType plain, const uint8_t* w, int64_t blocks_per_row, int64_t g, uint8_t* out);
// Row `row` of an interleaved matrix as f32, equal to ggml's dequantization of that row.
void dequantize_interleaved_row(const Tensor& w, int64_t row, float* out);

}  // namespace unicorn
