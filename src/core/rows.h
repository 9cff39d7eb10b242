// Row access to weight matrices of any dtype: the slow, obviously-correct path used by the
// reference backend, by tests and by code that converts weights.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace unicorn {

// Writes row `row` of the 2-D tensor `w` (F32, F16, BF16 or a ggml block format) as f32
// into out[0 .. w.dim(1)).
void dequantize_row(const Tensor& w, int64_t row, float* out);

// Whether dequantize_row supports this dtype.
bool row_dtype_supported(DType t);

}  // namespace unicorn
