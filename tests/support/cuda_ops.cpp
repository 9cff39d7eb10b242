#include "support/cuda_ops.h"

#include "core/quant/nf4.h"
#include "core/quant/quant.h"
#include "support/devices.h"
#include "support/op_checks.h"

namespace unicorn::test {

void CudaOps::SetUp() {
  gpu = backend_or_skip("cuda");
  if (!gpu) GTEST_SKIP() << "no CUDA GPU here";
}

Tensor weight(DType dtype, int64_t m, int64_t k, uint32_t seed) {
  const Tensor f = random_tensor(DType::F32, {m, k}, seed, 0.1f);
  if (dtype == DType::NF4) return nf4::quantize_tensor(f.converted(DType::BF16));
  if (is_block_format(dtype)) return quantize_matrix(f, dtype);
  return f.converted(dtype);
}

Tensor bf16_rounded(const Tensor& t) {
  return Tensor::from_f32(Tensor::from_f32(t.to_f32(), t.shape()).converted(DType::BF16).to_f32(), t.shape());
}

}  // namespace unicorn::test
