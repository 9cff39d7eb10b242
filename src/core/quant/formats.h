// Per-format row quantizers and dequantizers behind quant.h (n: values, a multiple of the
// format's block size; blocks: ggml_blocks.h).
#pragma once

#include <cstdint>

namespace unicorn::quant {

// 32-value formats (legacy_quants.cpp)
void quantize_q4_0(const float* x, void* y, int64_t n);
void quantize_q4_1(const float* x, void* y, int64_t n);
void quantize_q5_0(const float* x, void* y, int64_t n);
void quantize_q5_1(const float* x, void* y, int64_t n);
void quantize_q8_0(const float* x, void* y, int64_t n);
void dequantize_q4_0(const void* x, float* y, int64_t n);
void dequantize_q4_1(const void* x, float* y, int64_t n);
void dequantize_q5_0(const void* x, float* y, int64_t n);
void dequantize_q5_1(const void* x, float* y, int64_t n);
void dequantize_q8_0(const void* x, float* y, int64_t n);
void dequantize_iq4_nl(const void* x, float* y, int64_t n);

// 256-value super-block formats (k_quants.cpp)
void quantize_q2_K(const float* x, void* y, int64_t n);
void quantize_q3_K(const float* x, void* y, int64_t n);
void quantize_q4_K(const float* x, void* y, int64_t n);
void quantize_q5_K(const float* x, void* y, int64_t n);
void quantize_q6_K(const float* x, void* y, int64_t n);
void dequantize_q2_K(const void* x, float* y, int64_t n);
void dequantize_q3_K(const void* x, float* y, int64_t n);
void dequantize_q4_K(const void* x, float* y, int64_t n);
void dequantize_q5_K(const void* x, float* y, int64_t n);
void dequantize_q6_K(const void* x, float* y, int64_t n);

}  // namespace unicorn::quant
