// cuBLAS (and cuBLASLt, for products with a fused bias, GELU or sum), loaded at run time
// (dlopen) for the tensor-core matrix products of prefill and the vision tower: a CUDA build
// still starts where libcublas is absent, and then multiplies with its own kernels. Host
// code; only for the CUDA backend.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace unicorn::cuda {

class Blas {
 public:
  // A handle on the current device bound to `stream`, or nullptr (with the reason in *why)
  // when libcublas cannot be loaded: UNICORN_CUBLAS names the library file, else
  // libcublas.so.13 / libcublas.so on the loader's path. use_lt: cuBLASLt for the products
  // with an epilogue (where it loads).
  static std::unique_ptr<Blas> create(cudaStream_t stream, bool use_lt, std::string* why);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // "" when cuBLAS loads, else why not.
  static std::string unavailable_reason();

  // Row-major y [n, m] (rows ldy apart; 0: m) from x [n, k] W [m, k]^T: x and W bf16, y f32,
  // f32 accumulation. kNone: y = x W^T + bias; kGelu: y = gelu_tanh(x W^T + bias);
  // kAccumulate: y += x W^T + bias; bias [m] f32 or null. With a bias or GELU the product
  // goes through cuBLASLt with them in its epilogue (a pass over y where it cannot).
  enum class Epilogue { kNone, kGelu, kAccumulate };
  void gemm_bf16(const void* x, const void* w, float* y, int64_t n, int64_t m, int64_t k, int64_t ldy = 0,
                 const float* bias = nullptr, Epilogue e = Epilogue::kNone);

  // `parts` products of one x with the stacked W [parts m, k]: y_p [n, m] (y + p n m) =
  // x W_p^T + bias_p (bias [parts m] or null); one batched product through cuBLASLt, else one
  // product a part.
  void gemm_bf16_parts(const void* x, const void* w, float* y, int64_t n, int64_t m, int64_t k, int parts,
                       const float* bias);

  // gemm_bf16_parts with y and the bias bf16, through cuBLASLt only: false (nothing done) where
  // it is missing or has no algorithm for it.
  bool gemm_bf16_parts_out(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k, int parts,
                           const void* bias_bf16);

  // The same with y and the bias bf16 (kNone or kGelu), through cuBLASLt only: false (nothing
  // done) where it is missing or has no algorithm for it.
  bool gemm_bf16_out(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k, const void* bias_bf16,
                     bool gelu);

  // Column-major C_b = alpha op(A_b) op(B_b) for b < batch (A_b = A + b * stride_a, ...): f32
  // matrices on TF32 tensor cores (10-bit mantissa products, f32 accumulation).
  struct Strided {
    const float* p;
    int64_t ld, stride;
  };
  void gemm_f32_batched(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, Strided a,
                        Strided b, float* c, int64_t ldc, int64_t stride_c, int64_t batch);

 private:
  Blas() = default;
  struct Plan;
  // The product with its epilogue through cuBLASLt; false (nothing done) without it.
  bool lt_product(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k, int64_t ldy,
                  const void* bias, Epilogue e, bool y_bf16, int parts = 1);
  static constexpr size_t kWorkspaceBytes = size_t(16) << 20;  // cuBLASLt's scratch
  void* handle_ = nullptr;
  void* lt_ = nullptr;  // cublasLtHandle_t, null without cuBLASLt
  void* workspace_ = nullptr;
  cudaStream_t stream_ = nullptr;
  // Plans by (n, m, k, ldy, epilogue | y type | parts, bias or not, pointer alignment).
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int, bool, uint32_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace unicorn::cuda
