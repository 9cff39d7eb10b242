// y = x W^T for weights in ggml block formats (Q4_0, Q8_0, Q4_K, Q6_K) without dequantizing
// the matrix: activations are quantized to 8 bits once per call (quant_acts.h), then integer
// block dot products (quant_kernels.h). Results differ from the exact f32 product by that
// activation rounding, as llama.cpp's do.
#pragma once

#include <cstdint>
#include <span>

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

// Several products of the same x (attention's q, k, v; the FFN's gate and up), weights all of
// one dtype: the activations are quantized once, and at decode (n = 1) the threads stream
// through all the weights in one job.
struct QuantProduct {
  const Tensor* w;
  Tensor* y;
};
void quant_linear(ThreadPool& pool, const Tensor& x, std::span<const QuantProduct> products, QuantKernels kernels);

// Whether quant_linear takes weights of dtype t (plain or interleaved ggml block formats).
bool quant_linear_supported(DType t);

}  // namespace unicorn::cpu
