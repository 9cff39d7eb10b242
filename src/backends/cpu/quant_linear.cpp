#include "backends/cpu/quant_linear.h"

#include <algorithm>

#include "backends/cpu/quant_acts.h"
#include "backends/cpu/quant_kernels.h"
#include "core/error.h"
#include "core/quant/interleaved.h"

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
  const bool x16 = is_interleaved(t);
  const DType plain = x16 ? plain_of(t) : t;
  if (!quant_kernel_supported(plain)) fail("cpu linear: no quantized kernel for weights of dtype {}", dtype_name(t));
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  const bool fast = kernels == QuantKernels::Best && avx512_vnni_available();
  // The activations live for this call only; one buffer per calling thread is reused.
  thread_local QuantActs buffer;
  QuantActs& acts = buffer;  // a reference, so the worker threads' lambdas see this thread's buffer
  acts.allocate(plain, n, k);
  auto quantize = fast ? quantize_acts_avx512 : quantize_acts_portable;
  const float* xp = x.data<const float>();
  if (n >= 8) {
    pool.parallel_for(n, 4, [&](int64_t r0, int64_t r1) { quantize(xp, r0, r1, acts); });
  } else {
    quantize(xp, 0, n, acts);
  }
  const QuantGemmFn gemm = fast ? avx512_gemm(plain) : quant_gemm_portable;
  const int64_t row_bytes = dtype_bytes(plain, k);
  const auto* wp = static_cast<const uint8_t*>(w.raw());
  float* yp = y.data<float>();
  // Tasks of consecutive weight rows: each is read from memory once and reused from cache for
  // every activation row. Enough tasks to balance the threads, few enough to stay cheap.
  const int64_t min_tasks = 4 * pool.size();
  if (x16) {
    const QuantGemmX16Fn gemm_x16 = fast ? quant_gemm_avx512_x16 : quant_gemm_portable_x16;
    const int64_t groups = m / kInterleaveRows, tail = m % kInterleaveRows, nb = k / dtype_info(plain).block_elems;
    int64_t per_task = 4;
    while (per_task > 1 && groups / per_task < min_tasks) per_task /= 2;
    const int64_t group_tasks = (groups + per_task - 1) / per_task;
    pool.parallel_tasks(group_tasks + (tail ? 1 : 0), [&](int64_t task) {
      if (task == group_tasks) {  // the rows after the last whole group are plain rows
        gemm(wp + groups * kInterleaveRows * row_bytes, row_bytes, tail, acts, yp + groups * kInterleaveRows, m);
        return;
      }
      const int64_t g0 = task * per_task, ng = std::min(per_task, groups - g0);
      gemm_x16(wp + g0 * kInterleaveRows * row_bytes, nb, ng, acts, yp + g0 * kInterleaveRows, m);
    });
    return;
  }
  int64_t rows_per_task = 64;
  while (rows_per_task > 4 && m / rows_per_task < min_tasks) rows_per_task /= 2;
  const int64_t tasks = (m + rows_per_task - 1) / rows_per_task;
  pool.parallel_tasks(tasks, [&](int64_t task) {
    const int64_t j0 = task * rows_per_task, nw = std::min(rows_per_task, m - j0);
    gemm(wp + j0 * row_bytes, row_bytes, nw, acts, yp + j0, m);
  });
}

}  // namespace unicorn::cpu
