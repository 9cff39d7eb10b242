// What the CUDA op tests share (tests/backends/cuda_*_test.cpp): the fixture, skipped where no
// GPU is present (set UNICORN_REQUIRE_CUDA=1 on the GPU machine), and their weights.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "ops/backend.h"
#include "ops/reference_backend.h"

namespace unicorn::test {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override;
  Tensor up(const Tensor& host) { return gpu->from_host(host); }
  Tensor down(const Tensor& dev) { return gpu->to_host(dev); }

  std::unique_ptr<Backend> gpu;
  ReferenceBackend ref;
};

// A [m, k] weight in `dtype` (block formats quantized from f32 values; NF4 as bitsandbytes).
Tensor weight(DType dtype, int64_t m, int64_t k, uint32_t seed);

// w as the streamed one-row products multiply it (cuda_matvec.cu): NF4 with its levels as int8
// (nf4_int8_level / 127); other formats as they are.
Tensor as_streamed(const Tensor& w);

// x with each 32-value chunk of a row quantized to int8 and back (scale amax / 127, as the
// GPU's decode kernels over Q4_0 / Q8_0 do, and ggml's Q8_0).
Tensor int8_rounded(const Tensor& x);

// The same values rounded to bf16 (what the tensor-core path feeds cuBLAS), back in f32.
Tensor bf16_rounded(const Tensor& t);

}  // namespace unicorn::test
