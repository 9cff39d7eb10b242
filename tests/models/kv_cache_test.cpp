// KvCache's slot metadata: the span of slots (SlotView first / count, AttentionMask::key_first /
// key_count) that a backend may walk instead of every slot must hold every key any query of the
// step sees, through chunks, single steps, a ring that wraps, and cuts back.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "models/gemma3/kv_cache.h"
#include "ops/reference_backend.h"

namespace unicorn::gemma3 {
namespace {

TextConfig small_config(int64_t window) {
  TextConfig c;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.sliding_window = window;
  c.layer_types = {LayerType::Sliding, LayerType::Full};
  return c;
}

// Whether a query at (qp, qg) sees the key at (kp, kg): the mask's rule (ops/backend.h).
bool sees(int32_t qp, int32_t qg, int32_t kp, int32_t kg, int64_t window) {
  if (kp < 0) return false;
  if (window != 0 && int64_t(qp) - kp >= window) return false;
  return kp <= qp || (qg >= 0 && qg == kg);
}

// Every visible slot lies in the span; the span is no longer than the slots in use.
void expect_span_holds(KvCache& cache, const KvCache::Step& step, bool sliding, int64_t window) {
  const KvCache::SlotView sv = cache.slots_after(sliding, step);
  ASSERT_GE(sv.count, 1);
  ASSERT_LE(sv.count, sv.used);
  ASSERT_GE(sv.first, 0);
  ASSERT_LT(sv.first, sv.used);
  for (int64_t j = 0; j < sv.used; ++j) {
    bool visible = false;
    for (size_t i = 0; i < step.positions.size(); ++i)
      visible = visible || sees(step.positions[i], step.groups[i], sv.pos[size_t(j)], sv.group[size_t(j)],
                                sliding ? window : 0);
    if (!visible) continue;
    const int64_t t = (j - sv.first + sv.used) % sv.used;  // where slot j falls in the span
    EXPECT_LT(t, sv.count) << "slot " << j << " (position " << sv.pos[size_t(j)] << ") outside the span of "
                           << sv.count << " from " << sv.first << ", at " << cache.length();
    if (t >= sv.count) return;
  }
  if (!sliding) {
    EXPECT_EQ(sv.count, sv.used);  // full layers: every slot
  }
}

TEST(KvCacheSpan, HoldsEveryVisibleKey) {
  const int64_t window = 8, context = 64, chunk = 5;
  ReferenceBackend ref;
  const TextConfig config = small_config(window);
  KvCache cache(ref, config, context, chunk);
  auto run = [&](std::vector<int32_t> groups) {
    const KvCache::Step step = cache.plan(groups);
    expect_span_holds(cache, step, true, window);
    expect_span_holds(cache, step, false, window);
    cache.commit(step);
  };
  run({-1, -1, -1});               // a first chunk, shorter than the window
  run({-1, 0, 0, 0, -1});          // an image group within a chunk (bidirectional)
  for (int i = 0; i < 30; ++i) run({-1});  // single steps: the ring (window + chunk = 13) wraps
  run({-1, 1, 1, 1, 1});           // a chunk with an image after the ring wrapped
  ASSERT_TRUE(cache.truncate(cache.length() - 3));
  run({-1, -1});                   // after a cut back: the cut slots empty (-1)
  for (int i = 0; i < 20; ++i) run({-1});
  EXPECT_GT(cache.length(), 13 * 3);
  // The sliding span is the window's part of the ring, not all of it.
  const KvCache::Step step = cache.plan(std::vector<int32_t>{-1});
  EXPECT_EQ(cache.slots_after(true, step).count, window);
  EXPECT_EQ(cache.slots_after(true, step).used, window + chunk);
}

// A step's view is made once per layer type (every layer of the type asks for it), and made
// again once the cache changed, even for an equal step: a cut back empties a slot the view had
// shown holding an older position.
TEST(KvCacheSpan, ViewFollowsTheCache) {
  const int64_t window = 8, chunk = 5;  // a ring of 13 slots
  ReferenceBackend ref;
  const TextConfig config = small_config(window);
  KvCache cache(ref, config, 64, chunk);
  const std::vector<int32_t> one{-1};
  for (int i = 0; i < 20; ++i) cache.commit(cache.plan(one));
  const KvCache::Step step = cache.plan(one);  // position 20
  const KvCache::SlotView first = cache.slots_after(true, step);
  const std::vector<int32_t> before(first.pos.begin(), first.pos.end());
  const KvCache::SlotView full = cache.slots_after(false, step);
  EXPECT_EQ(full.used, 21);
  const KvCache::SlotView again = cache.slots_after(true, step);  // the same view, not a new copy
  EXPECT_EQ(again.pos.data(), first.pos.data());
  EXPECT_EQ(std::vector<int32_t>(again.pos.begin(), again.pos.end()), before);
  EXPECT_EQ(before[21 % 13], 21 - 13);  // slot 8 holds position 8 until 21 is written
  cache.commit(step);
  cache.commit(cache.plan(one));  // position 21 into slot 8
  ASSERT_TRUE(cache.truncate(20));
  const KvCache::Step same = cache.plan(one);
  ASSERT_EQ(same, step);
  const KvCache::SlotView after = cache.slots_after(true, same);
  EXPECT_EQ(after.pos[21 % 13], -1);  // cut: empty, no longer position 8
  EXPECT_EQ(after.pos[20 % 13], 20);
}

}  // namespace
}  // namespace unicorn::gemma3
