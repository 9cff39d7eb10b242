#include "support/cuda_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cuda/cuda_layout.h"
#include "core/quant/nf4.h"
#include "core/quant/quant.h"
#include "support/devices.h"
#include "support/op_checks.h"

namespace unicorn::test {

void CudaOps::SetUp() {
  gpu = backend_or_skip("cuda");
  if (!gpu) GTEST_SKIP() << "no CUDA GPU here";
}

Tensor int8_rounded(const Tensor& x) {
  std::vector<float> v = x.to_f32();
  for (size_t c = 0; c < v.size(); c += 32) {
    float amax = 0.0f;
    for (size_t i = c; i < c + 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t i = c; i < c + 32; ++i) v[i] = std::round(v[i] * id) * d;
  }
  return Tensor::from_f32(v, x.shape());
}

Tensor weight(DType dtype, int64_t m, int64_t k, uint32_t seed) {
  const Tensor f = random_tensor(DType::F32, {m, k}, seed, 0.1f);
  if (dtype == DType::NF4) return nf4::quantize_tensor(f.converted(DType::BF16));
  if (is_block_format(dtype)) return quantize_matrix(f, dtype);
  return f.converted(dtype);
}

Tensor as_streamed(const Tensor& w) {
  if (w.dtype() != DType::NF4) return w;
  auto st = std::make_shared<nf4::State>(nf4::state_of(w));
  for (float& level : st->quant_map) level = float(cuda::nf4_int8_level(level)) / 127.0f;
  return w.with_aux(st);
}

Tensor bf16_rounded(const Tensor& t) {
  return Tensor::from_f32(Tensor::from_f32(t.to_f32(), t.shape()).converted(DType::BF16).to_f32(), t.shape());
}

}  // namespace unicorn::test
