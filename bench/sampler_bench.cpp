// Sampler speed over a Gemma 3 vocabulary (262208 logits), the host's share of every decode
// step in `unicorn run / chat / serve` (bench's tgN does not sample). Logits: a normal spread
// with a few hundred plausible tokens well above it, as a trained model gives; fixed seed.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "runtime/sampler.h"

namespace unicorn {
namespace {

constexpr size_t kVocab = 262208;

const std::vector<float>& model_like_logits() {
  static const std::vector<float> logits = [] {
    std::mt19937 rng(7);
    std::normal_distribution<float> spread(-4.0f, 2.0f);
    std::vector<float> v(kVocab);
    for (float& x : v) x = spread(rng);
    std::uniform_int_distribution<size_t> pick(0, kVocab - 1);
    std::uniform_real_distribution<float> high(8.0f, 16.0f);
    for (int i = 0; i < 300; ++i) v[pick(rng)] = high(rng);
    return v;
  }();
  return logits;
}

void run(benchmark::State& state, SamplingParams p) {
  p.seed = 1;
  Sampler sampler(p);
  std::vector<int32_t> context(512);
  for (size_t i = 0; i < context.size(); ++i) context[i] = int32_t(i * 97 % kVocab);
  std::vector<float> logits;
  for (auto _ : state) {
    logits = model_like_logits();  // (the sampler modifies them; the copy is timed too: ~0.1 ms)
    benchmark::DoNotOptimize(sampler.sample(logits, context, std::span<const int32_t>(context).last(64)));
  }
}

void BM_SampleGreedy(benchmark::State& state) { run(state, SamplingParams{.temperature = 0.0f}); }
// Gemma 3's generation_config.json: do_sample, top_k 64, top_p 0.95.
void BM_SampleGemmaDefaults(benchmark::State& state) {
  run(state, SamplingParams{.temperature = 1.0f, .top_k = 64, .top_p = 0.95f});
}
void BM_SampleTopP(benchmark::State& state) { run(state, SamplingParams{.temperature = 0.7f, .top_p = 0.9f}); }
void BM_SampleTemperature(benchmark::State& state) { run(state, SamplingParams{.temperature = 0.8f}); }
void BM_SampleMinPRepetition(benchmark::State& state) {
  run(state, SamplingParams{.temperature = 1.0f, .min_p = 0.05f, .repetition_penalty = 1.1f});
}
void BM_CopyLogits(benchmark::State& state) {
  std::vector<float> logits;
  for (auto _ : state) {
    logits = model_like_logits();
    benchmark::DoNotOptimize(logits.data());
  }
}

BENCHMARK(BM_SampleGreedy)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SampleGemmaDefaults)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SampleTopP)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SampleTemperature)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SampleMinPRepetition)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CopyLogits)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace unicorn
