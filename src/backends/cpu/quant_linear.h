// y = x W^T for weights in ggml block formats (Q4_0, Q8_0, Q4_K, Q6_K) without dequantizing
// the matrix: activations are quantized to 8 bits once per call (quant_acts.h), then integer
// block dot products (quant_kernels.h). Results differ from the exact f32 product by that
// activation rounding, as llama.cpp's do.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace unicorn::cpu {

enum class QuantKernels {
  Best,      // AVX-512 VNNI where the CPU has it, else portable
  Portable,  // portable C++ only (tests of the fallback path)
};

// x [n, k] f32, w [m, k] with quant_kernel_supported(w.dtype()), y [n, m] f32. Shapes are
// checked by the caller (ops::check_linear).
void quant_linear(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor& y, QuantKernels kernels);

}  // namespace unicorn::cpu
