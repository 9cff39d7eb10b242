// Quantizing rows of f32 values into ggml block formats and back. Quantizers reproduce
// ggml's reference quantizers (ggml-quants.c quantize_row_*_ref) bit for bit, so a model we
// quantize matches one quantized by llama.cpp without an importance matrix; dequantizers
// reproduce ggml's dequantize_row_* exactly.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace unicorn {

class ThreadPool;

// Whether quantize_values can write this dtype: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool can_quantize_to(DType t);
// Whether dequantize_values can read this dtype: the above, and IQ4_NL.
bool can_dequantize_from(DType t);

// Writes n values (a multiple of the block size) as dtype t at out (dtype_bytes(t, n) bytes).
void quantize_values(DType t, const float* x, void* out, int64_t n);
// Reads n values of dtype t (a multiple of the block size) from in as f32.
void dequantize_values(DType t, const void* in, float* y, int64_t n);

// Quantizes a [rows, cols] matrix of F32, F16 or BF16 values to `target` row by row (rows
// split over `pool` when one is given). Error if cols is not a multiple of the target's
// block size or either dtype is unsupported.
Tensor quantize_matrix(const Tensor& matrix, DType target, ThreadPool* pool = nullptr);
// The same into `out` (dtype_bytes(target, rows * cols) bytes), for a writer's buffer.
void quantize_matrix_into(const Tensor& matrix, DType target, void* out, ThreadPool* pool = nullptr);

}  // namespace unicorn
