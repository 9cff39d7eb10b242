// Vectorized Q4_0 / Q8_0 quantizers producing the same bytes as quantize_q4_0 / quantize_q8_0
// (formats.h), for quantizing whole models at load.
#pragma once

#include <cstdint>

namespace unicorn::quant {

void quantize_q4_0_fast(const float* x, void* y, int64_t n);
void quantize_q8_0_fast(const float* x, void* y, int64_t n);

}  // namespace unicorn::quant
