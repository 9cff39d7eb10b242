// The host's slot bookkeeping of a decode step (KvCache::plan, slots_after for every layer, the
// mask spans), as Model::decode does it for a batch of sequences: 27B's 62 layers (52 sliding,
// window 1024, chunk 512), 32 sequences with `depth` tokens each. On a GPU it runs while the
// GPU runs the layers before; with many long sequences it can cost as much.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "models/gemma3/kv_cache.h"
#include "ops/reference_backend.h"

namespace unicorn::gemma3 {
namespace {

TextConfig config_27b_like() {
  TextConfig c;
  c.num_hidden_layers = 62;
  c.num_attention_heads = 2;  // (the caches' tensors: as small as possible, not timed)
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.sliding_window = 1024;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    c.layer_types.push_back(l % 6 == 5 ? LayerType::Full : LayerType::Sliding);
  return c;
}

void decode_step_bookkeeping(benchmark::State& state) {
  const int64_t seqs = state.range(0), depth = state.range(1);
  static ReferenceBackend ref;
  static const TextConfig config = config_27b_like();
  std::vector<std::unique_ptr<KvCache>> caches;
  const std::vector<int32_t> text(size_t(512), -1), one{-1};
  for (int64_t s = 0; s < seqs; ++s) {
    caches.push_back(std::make_unique<KvCache>(ref, config, depth + 4096, 512));
    for (int64_t at = 0; at < depth; at += 512)
      caches.back()->commit(caches.back()->plan(std::span(text).first(size_t(std::min<int64_t>(512, depth - at)))));
  }
  int64_t sum = 0;
  for (auto _ : state) {
    std::vector<KvCache::Step> steps;
    for (auto& c : caches) steps.push_back(c->plan(one));
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      for (size_t s = 0; s < caches.size(); ++s) {
        const KvCache::SlotView sv = caches[s]->slots_after(config.is_sliding(l), steps[s]);
        sum += sv.used + sv.count + sv.pos[size_t(sv.first)];
      }
    }
    for (size_t s = 0; s < caches.size(); ++s) {  // committed, then cut back: the same depth each time
      caches[s]->commit(steps[s]);
      caches[s]->truncate(depth);
    }
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(decode_step_bookkeeping)->Args({1, 4096})->Args({32, 0})->Args({32, 2048})->Args({32, 4096})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace unicorn::gemma3
