// The CPU backend: multithreaded (one ThreadPool sized to the cores) and vectorized
// (Highway, simd_kernels.h). Always built; the reference for every accelerator backend.
#pragma once

#include <memory>

#include "backends/cpu/buffer_cache.h"
#include "backends/cpu/quant_linear.h"
#include "core/thread_pool.h"
#include "ops/backend.h"

namespace unicorn {

class CpuBackend final : public Backend {
 public:
  // threads <= 0: one per hardware thread.
  explicit CpuBackend(int threads = 0);
  std::string name() const override { return "cpu"; }
  int threads() const { return pool_.size(); }
  ThreadPool& pool() { return pool_; }
  // Which kernels multiply block-format weights (tests force the portable ones).
  void set_quant_kernels(cpu::QuantKernels k) { quant_kernels_ = k; }

  Tensor alloc(DType dtype, Shape shape) override { return buffers_.zeros(dtype, std::move(shape)); }
  // Keeps views, except Q4_0 / Q8_0 / Q4_K / Q6_K matrices, interleaved for the integer kernels (*_X16).
  Tensor prepare_weight(const Tensor& host) override;
  Tensor to_host(const Tensor& t) override { return t; }
  Tensor from_host(const Tensor& host) override { return host; }

  void embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  // Block-format weights of one dtype: the activations quantized once, and at decode one job
  // streaming through all three (or both) matrices. Otherwise the defaults.
  void linear3(const Tensor& x, const Tensor& w0, const Tensor& w1, const Tensor& w2, Tensor& y0, Tensor& y1,
               Tensor& y2) override;
  void gate_up(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out) override;
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

 private:
  // y = x W^T for block formats without a quantized kernel: rows dequantized to f32 per task.
  void linear_dequantized(const Tensor& x, const Tensor& w, Tensor& y);
  // Whether these weights go through one cpu::quant_linear call.
  bool quant_fusable(std::initializer_list<const Tensor*> weights) const;

  ThreadPool pool_;
  cpu::BufferCache buffers_;
  cpu::QuantKernels quant_kernels_ = cpu::QuantKernels::Best;
};

}  // namespace unicorn
