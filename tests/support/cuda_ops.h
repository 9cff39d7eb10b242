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

// The same values rounded to bf16 (what the tensor-core path feeds cuBLAS), back in f32.
Tensor bf16_rounded(const Tensor& t);

}  // namespace unicorn::test
