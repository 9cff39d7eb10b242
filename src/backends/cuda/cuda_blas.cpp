#ifdef UNICORN_HAVE_CUDA

#include "backends/cuda/cuda_blas.h"

#include <cublas_v2.h>
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "core/error.h"

namespace unicorn::cuda {

namespace {

// The entry points used, with their C signatures (cublas_api.h overloads some in C++).
struct Api {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  std::string error;  // why the library is unusable, empty when it is
};

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* named = std::getenv("UNICORN_CUBLAS");
    void* lib = nullptr;
    std::string tried;
    for (const char* name : {named, "libcublas.so.13", "libcublas.so"}) {
      if (!name || !*name) continue;
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      tried += std::string(tried.empty() ? "" : "; ") + dlerror();
    }
    if (!lib) {
      a.error = "cuBLAS not found (" + tried + ")";
      return;
    }
    auto sym = [&](const char* n) {
      void* p = dlsym(lib, n);
      if (!p && a.error.empty()) a.error = std::string("cuBLAS lacks ") + n;
      return p;
    };
    a.create = reinterpret_cast<decltype(a.create)>(sym("cublasCreate_v2"));
    a.destroy = reinterpret_cast<decltype(a.destroy)>(sym("cublasDestroy_v2"));
    a.set_stream = reinterpret_cast<decltype(a.set_stream)>(sym("cublasSetStream_v2"));
    a.gemm_ex = reinterpret_cast<decltype(a.gemm_ex)>(sym("cublasGemmEx"));
    a.gemm_strided_batched_ex = reinterpret_cast<decltype(a.gemm_strided_batched_ex)>(sym("cublasGemmStridedBatchedEx"));
  });
  return a;
}

void check_blas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS {} failed (status {})", what, int(s));
}

}  // namespace

std::unique_ptr<Blas> Blas::create(cudaStream_t stream, std::string* why) {
  const Api& a = api();
  if (!a.error.empty()) {
    if (why) *why = a.error;
    return nullptr;
  }
  std::unique_ptr<Blas> b(new Blas());
  cublasHandle_t h = nullptr;
  if (a.create(&h) != CUBLAS_STATUS_SUCCESS) {
    if (why) *why = "cublasCreate failed";
    return nullptr;
  }
  b->handle_ = h;
  check_blas(a.set_stream(h, stream), "SetStream");
  return b;
}

std::string Blas::unavailable_reason() { return api().error; }

Blas::~Blas() {
  if (handle_) api().destroy(static_cast<cublasHandle_t>(handle_));
}

void Blas::gemm_bf16(const void* x, const void* w, float* y, int64_t n, int64_t m, int64_t k, int64_t ldy) {
  // Column-major view: y^T [m, n] = W [m, k] (stored as k x m: transposed) * x^T [k, n]; rows
  // of y ldy apart (0: m).
  const float one = 1.0f, zero = 0.0f;
  check_blas(api().gemm_ex(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(k),
                           &one, w, CUDA_R_16BF, int(k), x, CUDA_R_16BF, int(k), &zero, y, CUDA_R_32F, int(ldy > 0 ? ldy : m),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "GemmEx");
}

void Blas::gemm_f32_batched(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha,
                            Strided a, Strided b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const float zero = 0.0f;
  check_blas(api().gemm_strided_batched_ex(static_cast<cublasHandle_t>(handle_), transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(m), int(n), int(k), &alpha, a.p,
                                           CUDA_R_32F, int(a.ld), a.stride, b.p, CUDA_R_32F, int(b.ld), b.stride, &zero,
                                           c, CUDA_R_32F, int(ldc), stride_c, int(batch),
                                           CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
             "GemmStridedBatchedEx");
}

}  // namespace unicorn::cuda

#endif  // UNICORN_HAVE_CUDA
