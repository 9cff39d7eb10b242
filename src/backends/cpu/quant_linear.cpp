#include "backends/cpu/quant_linear.h"

#include <algorithm>
#include <atomic>
#include <vector>

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

// Decode (one activation row) only streams weights, so what matters is keeping memory busy.
// Each thread walks a contiguous share of the groups front to back, so the prefetchers (the
// hardware's and the kernel's, which runs on into the next pass) never restart mid-share; a
// thread that finishes early takes single groups from the back of a share still running, so
// a descheduled thread delays nobody. Near the end of its share an owner also takes single
// groups, so the threads finish within about one group of each other. A share is
// [front, back) packed into one atomic word.
class Shares {
 public:
  static constexpr int kMax = 64;
  static constexpr int64_t kPass = 4;  // groups the decode kernel streams at once

  Shares(int64_t groups, int n) : n_(n) {
    for (int i = 0; i < n; ++i) {
      const uint64_t lo = uint64_t(groups * i / n), hi = uint64_t(groups * (i + 1) / n);
      span_[i].v.store(lo | hi << 32, std::memory_order_relaxed);
    }
  }
  // Calls fn(begin, end) over ranges of groups: share `home` front to back, then the others'
  // groups from their backs.
  template <class Fn>
  void run(int home, Fn&& fn) {
    for (int64_t b, e; take(home, true, b, e);) fn(b, e);
    for (int d = 1; d < n_; ++d)
      for (int64_t b, e; take((home + d) % n_, false, b, e);) fn(b, e);
  }

 private:
  bool take(int i, bool own, int64_t& begin, int64_t& end) {
    std::atomic<uint64_t>& a = span_[i].v;
    uint64_t cur = a.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t lo = cur & 0xFFFFFFFFu, hi = cur >> 32;
      if (lo >= hi) return false;
      const uint64_t count = own && hi - lo >= 2 * kPass ? kPass : 1;
      const uint64_t next = own ? (lo + count) | hi << 32 : lo | (hi - count) << 32;
      if (a.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
        begin = int64_t(own ? lo : hi - count);
        end = begin + int64_t(count);
        return true;
      }
    }
  }

  struct alignas(64) Span {
    std::atomic<uint64_t> v;
  };
  Span span_[kMax];
  int n_;
};

}  // namespace

bool quant_linear_supported(DType t) {
  return quant_kernel_supported(is_interleaved(t) ? plain_of(t) : t);
}

void quant_linear(ThreadPool& pool, const Tensor& x, std::span<const QuantProduct> products, QuantKernels kernels) {
  if (products.empty()) return;
  const DType t = products[0].w->dtype();
  for (const QuantProduct& p : products)
    if (p.w->dtype() != t) fail("internal: quant_linear over weights of dtypes {} and {}", dtype_name(t), dtype_name(p.w->dtype()));
  const bool x16 = is_interleaved(t);
  const DType plain = x16 ? plain_of(t) : t;
  if (!quant_kernel_supported(plain)) fail("cpu linear: no quantized kernel for weights of dtype {}", dtype_name(t));
  const int64_t n = x.dim(0), k = x.dim(1);
  const bool fast = kernels == QuantKernels::Best && avx512_vnni_available();
  // The activations, quantized once for every product, live for this call only; one buffer
  // per calling thread is reused.
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
  const QuantGemmX16Fn gemm_x16 = fast ? quant_gemm_avx512_x16 : quant_gemm_portable_x16;
  const int64_t row_bytes = dtype_bytes(plain, k);
  const int64_t nb = k / dtype_info(plain).block_elems;
  auto weights = [](const QuantProduct& p) { return static_cast<const uint8_t*>(p.w->raw()); };
  // The rows after the last whole group of 16 are plain rows.
  auto tail = [&](const QuantProduct& p) {
    const int64_t m = p.w->dim(0), g = m / kInterleaveRows * kInterleaveRows;
    gemm(weights(p) + g * row_bytes, row_bytes, m - g, acts, p.y->data<float>() + g, m);
  };
  if (x16 && n == 1) {
    // Decode: the products' groups in one run of shares, so the threads stream from one
    // matrix into the next without stopping.
    std::vector<int64_t> first(products.size() + 1, 0);  // first[i]: product i's first group
    std::vector<size_t> with_tail;
    for (size_t i = 0; i < products.size(); ++i) {
      const int64_t m = products[i].w->dim(0);
      first[i + 1] = first[i] + m / kInterleaveRows;
      if (m % kInterleaveRows) with_tail.push_back(i);
    }
    const int n_shares = std::min(pool.size(), Shares::kMax);
    Shares shares(first.back(), n_shares);
    pool.parallel_tasks(n_shares + int64_t(with_tail.size()), [&](int64_t task) {
      if (task >= n_shares) return tail(products[with_tail[size_t(task - n_shares)]]);
      shares.run(int(task), [&](int64_t begin, int64_t end) {
        for (size_t i = 0; i < products.size() && begin < end; ++i) {  // the pieces in each product
          if (begin >= first[i + 1]) continue;
          const QuantProduct& p = products[i];
          const int64_t g0 = begin - first[i], g1 = std::min(end, first[i + 1]) - first[i];
          gemm_x16(weights(p) + g0 * kInterleaveRows * row_bytes, nb, g1 - g0, acts,
                   p.y->data<float>() + g0 * kInterleaveRows, p.w->dim(0));
          begin = first[i + 1];
        }
      });
    });
    return;
  }
  // Tasks of consecutive weight rows: each is read from memory once and reused from cache for
  // every activation row. Enough tasks to balance the threads, few enough to stay cheap.
  const int64_t min_tasks = 4 * pool.size();
  for (const QuantProduct& p : products) {
    const int64_t m = p.w->dim(0);
    const uint8_t* wp = weights(p);
    float* yp = p.y->data<float>();
    if (x16) {
      const int64_t groups = m / kInterleaveRows;
      int64_t per_task = 4;
      while (per_task > 1 && groups / per_task < min_tasks) per_task /= 2;
      const int64_t group_tasks = (groups + per_task - 1) / per_task;
      pool.parallel_tasks(group_tasks + (m % kInterleaveRows ? 1 : 0), [&](int64_t task) {
        if (task == group_tasks) return tail(p);
        const int64_t g0 = task * per_task, ng = std::min(per_task, groups - g0);
        gemm_x16(wp + g0 * kInterleaveRows * row_bytes, nb, ng, acts, yp + g0 * kInterleaveRows, m);
      });
      continue;
    }
    int64_t rows_per_task = 64;
    while (rows_per_task > 4 && m / rows_per_task < min_tasks) rows_per_task /= 2;
    const int64_t tasks = (m + rows_per_task - 1) / rows_per_task;
    pool.parallel_tasks(tasks, [&](int64_t task) {
      const int64_t j0 = task * rows_per_task, nw = std::min(rows_per_task, m - j0);
      gemm(wp + j0 * row_bytes, row_bytes, nw, acts, yp + j0, m);
    });
  }
}

void quant_linear(ThreadPool& pool, const Tensor& x, const Tensor& w, Tensor& y, QuantKernels kernels) {
  const QuantProduct p{&w, &y};
  quant_linear(pool, x, std::span<const QuantProduct>(&p, 1), kernels);
}

}  // namespace unicorn::cpu
