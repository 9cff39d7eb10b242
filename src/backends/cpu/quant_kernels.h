// Matrix products of quantized activations (quant_acts.h) with rows of ggml block weights,
// one implementation per instruction set: AVX-512 VNNI intrinsics (quant_gemm_avx512_*.cpp,
// compiled for that target and chosen at run time) and portable C++ for every other CPU.
// Both compute the same integer block dot products; only the f32 summation order differs.
#pragma once

#include <cstdint>

#include "backends/cpu/quant_acts.h"

namespace unicorn::cpu {

// y[c * ldy + j] = sum over blocks of (weight row j) . (activation row c), for every
// activation row c < a.rows and weight rows j < nw (w: nw rows of w_row_bytes bytes, of dtype
// a.weight). Weight rows are reused from cache for all activation rows.
using QuantGemmFn = void (*)(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                             int64_t ldy);

// Interleaved weights (core/quant/interleaved.h): n_groups groups of 16 rows of nb blocks
// from w, for a.weight = Q4_0, Q8_0, Q4_K or Q6_K (the plain format). Writes y[c * ldy + 16 * g + i].
using QuantGemmX16Fn = void (*)(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                                int64_t ldy);

// Portable C++ (any CPU).
void quant_gemm_portable(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                         int64_t ldy);
void quant_gemm_portable_x16(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                             int64_t ldy);

// AVX-512 (F, BW, VL, DQ) with VNNI: callers must check avx512_vnni_available() first.
bool avx512_vnni_available();
void quant_gemm_avx512_q4_0(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                            int64_t ldy);
void quant_gemm_avx512_q8_0(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                            int64_t ldy);
void quant_gemm_avx512_q4_k(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                            int64_t ldy);
void quant_gemm_avx512_q6_k(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                            int64_t ldy);
void quant_gemm_avx512_x16(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                           int64_t ldy);
// Quantizes activation rows [r0, r1) like quantize_acts_portable, with the same results.
void quantize_acts_avx512(const float* x, int64_t r0, int64_t r1, QuantActs& a);

}  // namespace unicorn::cpu
