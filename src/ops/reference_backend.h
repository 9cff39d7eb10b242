// The scalar reference backend: plain loops, double accumulation, one thread. It defines
// what each op means; every other backend is tested against it.
#pragma once

#include "ops/backend.h"

namespace unicorn {

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference"; }
  Tensor alloc(DType dtype, Shape shape) override { return Tensor::zeros(dtype, std::move(shape)); }
  Tensor prepare_weight(const Tensor& host) override { return host; }
  Tensor to_host(const Tensor& t) override { return t; }
  Tensor from_host(const Tensor& host) override { return host; }

  void embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override;
  void rope(Tensor& x, std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) override;
  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void gelu_tanh(Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                 const AttentionShape& shape, Tensor& out) override;
  void scatter_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) override;
  void gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) override;
  void patchify(const Tensor& image, int64_t patch, Tensor& out) override;
  void avg_pool_grid(const Tensor& x, int64_t side, int64_t kernel, Tensor& out) override;
};

namespace ops {
// Shared scalar definitions (also used by faster backends for their tails and for tests).
float gelu_tanh_scalar(float x);
// The RoPE inverse frequency of pair i, computed as transformers does (in f32).
float rope_inv_freq(int64_t i, int64_t head_dim, double theta, double factor);
// Whether key slot j is visible to query i.
inline bool attention_visible(const AttentionMask& m, size_t i, size_t j) {
  const int32_t kp = m.k_pos[j];
  if (kp < 0) return false;
  if (!m.causal) return true;
  const int32_t qp = m.q_pos[i];
  if (m.window != 0 && int64_t(qp) - kp >= m.window) return false;  // also inside an image
  if (kp <= qp) return true;
  return m.q_group[i] >= 0 && m.q_group[i] == m.k_group[j];
}
}  // namespace ops

}  // namespace unicorn
