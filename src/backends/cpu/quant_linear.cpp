#include "backends/cpu/quant_linear.h"

#include <algorithm>

#include "backends/cpu/quant_acts.h"
#include "backends/cpu/quant_kernels.h"
#include "core/error.h"

namespace unicorn::cpu {

namespace {

QuantGemmFn avx512_gemm(DType t) {
  switch (t) {
    case DType::Q4_0: return quant_gemm_avx512_q4_0;
    case DType::Q8_0: return quant_gemm_avx512_q8_0;
    case DType::Q4_K: return quant_gemm_avx512_q4_k;
    case DType::Q6_K: return quant_gemm_avx512_q6_k;
    default: return nullptr;
  }
}

}  // namespace

void quant_linear(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor& y, QuantKernels kernels) {
  const DType t = w.dtype();
  if (!quant_kernel_supported(t)) fail("cpu linear: no quantized kernel for weights of dtype {}", dtype_name(t));
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  const bool fast = kernels == QuantKernels::Best && avx512_vnni_available();
  // The activations live for this call only; one buffer per calling thread is reused.
  thread_local QuantActs buffer;
  QuantActs& acts = buffer;  // a reference, so the worker threads' lambdas see this thread's buffer
  acts.allocate(t, n, k);
  auto quantize = fast ? quantize_acts_avx512 : quantize_acts_portable;
  const float* xp = x.data<const float>();
  if (n >= 8) {
    pool.parallel_for(n, 4, [&](int64_t r0, int64_t r1) { quantize(xp, r0, r1, acts); });
  } else {
    quantize(xp, 0, n, acts);
  }
  const QuantGemmFn gemm = fast ? avx512_gemm(t) : quant_gemm_portable;
  // Tasks of consecutive weight rows: each is read from memory once and reused from cache for
  // every activation row. Enough tasks to balance the threads, few enough to stay cheap.
  int64_t rows_per_task = 64;
  while (rows_per_task > 4 && m / rows_per_task < 4 * pool.size()) rows_per_task /= 2;
  const int64_t tasks = (m + rows_per_task - 1) / rows_per_task;
  const int64_t row_bytes = dtype_bytes(t, k);
  const auto* wp = static_cast<const uint8_t*>(w.raw());
  float* yp = y.data<float>();
  pool.parallel_tasks(tasks, [&](int64_t task) {
    const int64_t j0 = task * rows_per_task, nw = std::min(rows_per_task, m - j0);
    gemm(wp + j0 * row_bytes, row_bytes, nw, acts, yp + j0, m);
  });
}

}  // namespace unicorn::cpu
