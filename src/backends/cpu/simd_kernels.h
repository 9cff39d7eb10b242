// Vectorized inner loops of the CPU backend (Highway, dispatched at run time to the best
// instruction set of the machine: AVX-512, AVX2, SSE4 or scalar). Each is a plain function
// over raw pointers; threading and shape checks live in cpu_backend.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unicorn::cpu {

// y[i * ldy + j] = dot(x + i * ldx, w + j * ldw) over k values, for i < nx <= 4, j < nw <= 4.
// Weight rows are BF16, F16 (as raw uint16) or F32.
void dot_tile_bf16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k,
                   float* y, size_t ldy);
void dot_tile_f16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k,
                  float* y, size_t ldy);
void dot_tile_f32(const float* x, size_t ldx, size_t nx, const float* w, size_t ldw, size_t nw, size_t k, float* y,
                  size_t ldy);

float dot_f32(const float* a, const float* b, size_t n);
// y += a * x
void axpy_f32(float a, const float* x, float* y, size_t n);
// y = x * scale
void scale_f32(const float* x, float scale, float* y, size_t n);
// Converts n BF16 / F16 values to f32.
void bf16_to_f32_row(const uint16_t* x, float* y, size_t n);
void f16_to_f32_row(const uint16_t* x, float* y, size_t n);
// sum of squares
float sum_squares_f32(const float* x, size_t n);
// y = x * inv * w1 (w1 = 1 + w already added)
void scale_mul_f32(const float* x, float inv, const float* w1, float* y, size_t n);
// out = gelu_tanh(g) * u   (u may be null: out = gelu_tanh(g))
void gelu_tanh_mul_f32(const float* g, const float* u, float* out, size_t n);
// out = a + b
void add_f32(const float* a, const float* b, float* out, size_t n);
// x = exp(x - m), returns the sum
float exp_sub_sum_f32(float* x, float m, size_t n);
// The largest of n values, NaN left out (with finite_only, infinities too); -inf if none.
float max_f32(const float* x, size_t n, bool finite_only);
// out = exp(x * scale - m) where x is finite (exp of anything below -104: 0), else 0; returns
// their sum (added in f64).
double exp_scaled_f32(const float* x, float scale, float m, float* out, size_t n);
// The first i < n with x[i] == v, or n.
size_t find_f32(const float* x, size_t n, float v);
// Writes to idx the indices i < n, in order, of the finite x[i] with x[i] * scale >= threshold
// (room for n needed); returns how many.
size_t collect_at_least(const float* x, size_t n, float scale, float threshold, int32_t* idx);

}  // namespace unicorn::cpu
