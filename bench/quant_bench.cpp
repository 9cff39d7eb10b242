// CpuBackend::linear over quantized weights at Gemma 3 1B's shapes: decode (n = 1, reported
// as GB/s of weights read: bandwidth-bound) and prefill (n = 128: compute-bound, reported as
// integer multiply-adds per second). BF16 weights for comparison.
//   ./build/bench/unicorn_kernel_bench --benchmark_filter=Linear
#include <benchmark/benchmark.h>

#include <map>
#include <random>
#include <tuple>

#include "backends/cpu/cpu_backend.h"
#include "core/quant/quant.h"
#include "core/thread_pool.h"

namespace unicorn {
namespace {

// One weight matrix per (dtype, m, k), made once: quantizing 8M values takes a while.
const Tensor& weights(DType t, int64_t m, int64_t k) {
  static std::map<std::tuple<DType, int64_t, int64_t>, Tensor> cache;
  auto it = cache.find({t, m, k});
  if (it != cache.end()) return it->second;
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.03f);
  std::vector<float> v(size_t(m * k));
  for (float& x : v) x = dist(rng);
  const Tensor f = Tensor::from_f32(v, {m, k});
  ThreadPool pool;
  Tensor w = t == DType::BF16 ? f.converted(DType::BF16) : quantize_matrix(f, t, &pool);
  return cache.emplace(std::tuple{t, m, k}, std::move(w)).first->second;
}

void BM_Linear(benchmark::State& state, DType t) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const int threads = int(state.range(3));
  CpuBackend cpu(threads);
  const Tensor w = cpu.prepare_weight(weights(t, m, k));  // as the engine does (Q4_0 / Q8_0: interleaved)
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> xv(size_t(n * k));
  for (float& x : xv) x = dist(rng);
  const Tensor x = Tensor::from_f32(xv, {n, k});
  Tensor y = cpu.alloc(DType::F32, {n, m});
  for (auto _ : state) {
    cpu.linear(x, w, nullptr, y);
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * w.nbytes());  // weight bytes read per call
  state.counters["GMAC/s"] =
      benchmark::Counter(double(n * k * m) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// {n, k, m, threads}: Gemma 3 1B's FFN up/gate (k 1152 -> m 6912) and down (6912 -> 1152).
void Shapes(benchmark::internal::Benchmark* b, bool k_format) {
  for (int threads : {1, 2}) {
    for (int64_t n : {1, 128}) {
      if (!k_format) b->Args({n, 1152, 6912, threads});  // 1152 is not a multiple of 256
      b->Args({n, 6912, 1152, threads});
    }
  }
  b->ArgNames({"n", "k", "m", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK_CAPTURE(BM_Linear, bf16, DType::BF16)->Apply([](auto* b) { Shapes(b, false); });
BENCHMARK_CAPTURE(BM_Linear, q8_0, DType::Q8_0)->Apply([](auto* b) { Shapes(b, false); });
BENCHMARK_CAPTURE(BM_Linear, q4_0, DType::Q4_0)->Apply([](auto* b) { Shapes(b, false); });
BENCHMARK_CAPTURE(BM_Linear, q4_k, DType::Q4_K)->Apply([](auto* b) { Shapes(b, true); });
BENCHMARK_CAPTURE(BM_Linear, q6_k, DType::Q6_K)->Apply([](auto* b) { Shapes(b, true); });

// The tied LM head at decode: 262144 x 1152, the largest matrix a step reads.
void BM_LmHead(benchmark::State& state, DType t) { BM_Linear(state, t); }
BENCHMARK_CAPTURE(BM_LmHead, q8_0, DType::Q8_0)
    ->Args({1, 1152, 262144, 2})
    ->ArgNames({"n", "k", "m", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_LmHead, q4_0, DType::Q4_0)
    ->Args({1, 1152, 262144, 2})
    ->ArgNames({"n", "k", "m", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace unicorn
