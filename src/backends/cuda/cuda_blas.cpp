#ifdef UNICORN_HAVE_CUDA

#include "backends/cuda/cuda_blas.h"
#include "backends/cuda/cuda_kernels.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

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

// cuBLASLt (libcublasLt, which libcublas itself loads): the products with fused epilogues.
struct LtApi {
  cublasStatus_t (*create)(cublasLtHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasLtHandle_t) = nullptr;
  cublasStatus_t (*desc_create)(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t) = nullptr;
  cublasStatus_t (*desc_destroy)(cublasLtMatmulDesc_t) = nullptr;
  cublasStatus_t (*desc_set)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void*, size_t) = nullptr;
  cublasStatus_t (*layout_create)(cublasLtMatrixLayout_t*, cudaDataType, uint64_t, uint64_t, int64_t) = nullptr;
  cublasStatus_t (*layout_destroy)(cublasLtMatrixLayout_t) = nullptr;
  cublasStatus_t (*layout_set)(cublasLtMatrixLayout_t, cublasLtMatrixLayoutAttribute_t, const void*, size_t) = nullptr;
  cublasStatus_t (*pref_create)(cublasLtMatmulPreference_t*) = nullptr;
  cublasStatus_t (*pref_destroy)(cublasLtMatmulPreference_t) = nullptr;
  cublasStatus_t (*pref_set)(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t, const void*,
                             size_t) = nullptr;
  cublasStatus_t (*heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                              cublasLtMatmulHeuristicResult_t*, int*) = nullptr;
  cublasStatus_t (*matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void*, const void*, cublasLtMatrixLayout_t,
                           const void*, cublasLtMatrixLayout_t, const void*, const void*, cublasLtMatrixLayout_t, void*,
                           cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) = nullptr;
  bool ok = false;
};

const LtApi& lt_api() {
  static LtApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!api().error.empty()) return;
    void* lib = nullptr;
    for (const char* name : {"libcublasLt.so.13", "libcublasLt.so"})
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib) return;
    bool all = true;
    auto sym = [&](auto& fn, const char* n) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, n));
      all = all && fn;
    };
    sym(a.create, "cublasLtCreate");
    sym(a.destroy, "cublasLtDestroy");
    sym(a.desc_create, "cublasLtMatmulDescCreate");
    sym(a.desc_destroy, "cublasLtMatmulDescDestroy");
    sym(a.desc_set, "cublasLtMatmulDescSetAttribute");
    sym(a.layout_create, "cublasLtMatrixLayoutCreate");
    sym(a.layout_destroy, "cublasLtMatrixLayoutDestroy");
    sym(a.layout_set, "cublasLtMatrixLayoutSetAttribute");
    sym(a.pref_create, "cublasLtMatmulPreferenceCreate");
    sym(a.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    sym(a.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    sym(a.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    sym(a.matmul, "cublasLtMatmul");
    a.ok = all;
  });
  return a;
}

void check_blas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("cuBLAS {} failed (status {})", what, int(s));
}

}  // namespace

std::unique_ptr<Blas> Blas::create(cudaStream_t stream, bool use_lt, std::string* why) {
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
  b->stream_ = stream;
  check_blas(a.set_stream(h, stream), "SetStream");
  if (!use_lt || !lt_api().ok) return b;
  cublasLtHandle_t lh = nullptr;
  if (lt_api().create(&lh) != CUBLAS_STATUS_SUCCESS) return b;
  if (cudaMalloc(&b->workspace_, kWorkspaceBytes) == cudaSuccess) {
    b->lt_ = lh;
  } else {  // no room for its workspace: products without it
    cudaGetLastError();
    b->workspace_ = nullptr;
    lt_api().destroy(lh);
  }
  return b;
}

// A product's descriptors and the algorithm cuBLASLt chose for them, kept per shape.
struct Blas::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;
  ~Plan() {
    const LtApi& lt = lt_api();
    if (desc) lt.desc_destroy(desc);
    for (cublasLtMatrixLayout_t l : {a, b, c})
      if (l) lt.layout_destroy(l);
  }
};

bool Blas::lt_product(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k, int64_t ldy,
                      const void* bias, Epilogue e, bool y_bf16, int parts) {
  if (!lt_) return false;
  const LtApi& lt = lt_api();
  // The alignment the pointers share (up to 256 bytes): the algorithm chosen may rely on it.
  uintptr_t bits = 256;
  for (const void* p : {x, w, static_cast<const void*>(y), bias})
    if (p) bits |= reinterpret_cast<uintptr_t>(p);
  const uint32_t align = uint32_t(bits & (~bits + 1));
  const auto key = std::make_tuple(n, m, k, ldy, int(e) | (y_bf16 ? 8 : 0) | parts << 4, bias != nullptr, align);
  auto& slot = plans_[key];
  if (!slot) {
    slot = std::make_unique<Plan>();
    Plan& p = *slot;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const uint32_t epi = e == Epilogue::kGelu ? (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU)
                                              : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    cublasLtMatmulPreference_t pref = nullptr;
    bool ok = lt.desc_create(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
              lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
              lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
              lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
              lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) == CUBLAS_STATUS_SUCCESS &&
              // Column-major: y^T [m, n] = W^T' [m, k] (W stored k x m) * x^T [k, n].
              lt.layout_create(&p.a, CUDA_R_16BF, uint64_t(k), uint64_t(m), k) == CUBLAS_STATUS_SUCCESS &&
              lt.layout_create(&p.b, CUDA_R_16BF, uint64_t(k), uint64_t(n), k) == CUBLAS_STATUS_SUCCESS &&
              // y and the bias (its type follows y's) f32, or bf16.
              lt.layout_create(&p.c, y_bf16 ? CUDA_R_16BF : CUDA_R_32F, uint64_t(m), uint64_t(n), ldy) ==
                  CUBLAS_STATUS_SUCCESS &&
              lt.pref_create(&pref) == CUBLAS_STATUS_SUCCESS;
    if (parts > 1) {  // a batch of products: W and y strided, x the same for each (stride 0)
      const int32_t count = parts;
      const int64_t stride_w = m * k, stride_x = 0, stride_y = ldy * n, stride_bias = m;
      for (auto [layout, stride] : {std::pair{p.a, stride_w}, {p.b, stride_x}, {p.c, stride_y}})
        ok = ok &&
             lt.layout_set(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count) == CUBLAS_STATUS_SUCCESS &&
             lt.layout_set(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride) ==
                 CUBLAS_STATUS_SUCCESS;
      ok = ok && lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &stride_bias, sizeof stride_bias) ==
                     CUBLAS_STATUS_SUCCESS;
    }
    const uint64_t ws = kWorkspaceBytes;
    ok = ok && lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == CUBLAS_STATUS_SUCCESS;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      ok = ok && lt.pref_set(pref, attr, &align, sizeof align) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulHeuristicResult_t found{};
    int count = 0;
    ok = ok && lt.heuristic(static_cast<cublasLtHandle_t>(lt_), p.desc, p.a, p.b, p.c, p.c, pref, 1, &found, &count) ==
                   CUBLAS_STATUS_SUCCESS;
    if (pref) lt.pref_destroy(pref);
    p.usable = ok && count > 0;
    p.algo = found.algo;
  }
  Plan& p = *slot;
  if (!p.usable) return false;  // no algorithm for it: the caller takes the plain product
  check_blas(lt.desc_set(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "LtMatmulDescSetAttribute");
  const float one = 1.0f, beta = e == Epilogue::kAccumulate ? 1.0f : 0.0f;
  check_blas(lt.matmul(static_cast<cublasLtHandle_t>(lt_), p.desc, &one, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                       workspace_, kWorkspaceBytes, stream_),
             "LtMatmul");
  return true;
}

std::string Blas::unavailable_reason() { return api().error; }

Blas::~Blas() {
  plans_.clear();
  if (lt_) lt_api().destroy(static_cast<cublasLtHandle_t>(lt_));
  if (workspace_) {
    if (stream_) cudaStreamSynchronize(stream_);
    cudaFree(workspace_);
  }
  if (handle_) api().destroy(static_cast<cublasHandle_t>(handle_));
  cudaGetLastError();
}

void Blas::gemm_bf16(const void* x, const void* w, float* y, int64_t n, int64_t m, int64_t k, int64_t ldy,
                     const float* bias, Epilogue e) {
  if (ldy <= 0) ldy = m;
  // A plain product goes to cublasGemmEx; one with a bias or GELU to cuBLASLt with them fused,
  // else to cublasGemmEx and a pass over y.
  if ((bias || e == Epilogue::kGelu) && lt_product(x, w, y, n, m, k, ldy, bias, e, false)) return;
  // Column-major view: y^T [m, n] = W [m, k] (stored as k x m: transposed) * x^T [k, n].
  const float one = 1.0f, beta = e == Epilogue::kAccumulate ? 1.0f : 0.0f;
  check_blas(api().gemm_ex(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, int(m), int(n), int(k),
                           &one, w, CUDA_R_16BF, int(k), x, CUDA_R_16BF, int(k), &beta, y, CUDA_R_32F, int(ldy),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "GemmEx");
  if (bias || e == Epilogue::kGelu) bias_act(y, bias, n, m, ldy, e == Epilogue::kGelu, stream_);
}

void Blas::gemm_bf16_parts(const void* x, const void* w, float* y, int64_t n, int64_t m, int64_t k, int parts,
                           const float* bias) {
  if (parts > 1 && lt_product(x, w, y, n, m, k, m, bias, Epilogue::kNone, false, parts)) return;
  const auto* wb = static_cast<const uint16_t*>(w);  // bf16
  for (int p = 0; p < parts; ++p)
    gemm_bf16(x, wb + p * m * k, y + p * n * m, n, m, k, m, bias ? bias + p * m : nullptr);
}

bool Blas::gemm_bf16_parts_out(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k, int parts,
                               const void* bias_bf16) {
  return lt_product(x, w, y, n, m, k, m, bias_bf16, Epilogue::kNone, true, parts);
}

bool Blas::gemm_bf16_out(const void* x, const void* w, void* y, int64_t n, int64_t m, int64_t k,
                         const void* bias_bf16, bool gelu) {
  return lt_product(x, w, y, n, m, k, m, bias_bf16, gelu ? Epilogue::kGelu : Epilogue::kNone, true);
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
