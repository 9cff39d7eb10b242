#include "models/gemma3/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace unicorn::gemma3 {

KvCache::KvCache(Backend& backend, const TextConfig& config, int64_t context, int64_t max_chunk)
    : config_(config), context_(context), max_chunk_(max_chunk) {
  if (context <= 0) fail("context size must be positive, got {}", context);
  if (max_chunk <= 0) fail("chunk size must be positive, got {}", max_chunk);
  // A chunk's first query needs window - 1 earlier keys; its own keys are written first.
  ring_ = std::min(context_, config.sliding_window + max_chunk_);
  const int64_t width = config.num_key_value_heads * config.head_dim;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const int64_t slots = config.is_sliding(l) ? ring_ : context_;
    k_.push_back(backend.alloc(backend.kv_dtype(), {slots, width}));
    v_.push_back(backend.alloc(backend.kv_dtype(), {slots, width}));
  }
  truncate_all();
}

void KvCache::truncate_all() {
  length_ = 0;
  ++version_;
  full_pos_.assign(size_t(context_), -1);
  full_group_.assign(size_t(context_), -1);
  ring_pos_.assign(size_t(ring_), -1);
  ring_group_.assign(size_t(ring_), -1);
}

KvCache::Step KvCache::plan(std::span<const int32_t> groups) const {
  const int64_t n = int64_t(groups.size());
  if (n > max_chunk_) fail("internal: chunk of {} tokens exceeds the cache's chunk size {}", n, max_chunk_);
  if (length_ + n > context_)
    fail("context full: {} positions held + {} new exceed the context size {}", length_, n, context_);
  Step s;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = int32_t(length_ + i);
    s.positions.push_back(p);
    s.groups.push_back(groups[size_t(i)]);
    s.full_slots.push_back(p);
    s.sliding_slots.push_back(int32_t(p % ring_));
  }
  return s;
}

KvCache::SlotView KvCache::slots_after(bool sliding, const Step& step) {
  After& a = after_[sliding ? 1 : 0];
  if (a.version == version_ && a.step == step) return a.view;
  const auto& pos = sliding ? ring_pos_ : full_pos_;
  const auto& grp = sliding ? ring_group_ : full_group_;
  const auto& slots = sliding ? step.sliding_slots : step.full_slots;
  const int64_t end = length_ + int64_t(step.positions.size());
  const int64_t used = sliding ? std::min(end, ring_) : end;
  a.pos.assign(pos.begin(), pos.begin() + used);
  a.group.assign(grp.begin(), grp.begin() + used);
  for (size_t i = 0; i < slots.size(); ++i) {
    a.pos[size_t(slots[i])] = step.positions[i];
    a.group[size_t(slots[i])] = step.groups[i];
  }
  a.version = version_;
  a.step = step;
  a.view = {a.pos, a.group, used, 0, used};
  // The keys a query at position p may see: positions above p - window (image groups reach
  // forward only within the step), every one of them still in the ring (window + chunk slots).
  const int64_t last = end - 1;
  if (sliding && !step.positions.empty() && last >= 0) {
    const int64_t from = std::max<int64_t>(0, int64_t(step.positions[0]) - config_.sliding_window + 1);
    a.view.first = from % ring_;
    a.view.count = std::min(used, last - from + 1);
  }
  return a.view;
}

void KvCache::commit(const Step& step) {
  for (size_t i = 0; i < step.positions.size(); ++i) {
    full_pos_[size_t(step.full_slots[i])] = step.positions[i];
    full_group_[size_t(step.full_slots[i])] = step.groups[i];
    ring_pos_[size_t(step.sliding_slots[i])] = step.positions[i];
    ring_group_[size_t(step.sliding_slots[i])] = step.groups[i];
  }
  length_ += int64_t(step.positions.size());
  ++version_;
}

bool KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) return false;
  if (n == length_) return true;
  if (n == 0) {
    truncate_all();
    return true;
  }
  // The ring must still hold positions [n - window + 1, n) for the next query at n... and the
  // chunk after it; positions overwritten since are lost.
  const int64_t need_from = std::max<int64_t>(0, n - config_.sliding_window);
  for (int64_t p = need_from; p < n; ++p) {
    if (ring_pos_[size_t(p % ring_)] != p) return false;
  }
  for (int64_t p = n; p < length_; ++p) {
    full_pos_[size_t(p)] = -1;
    full_group_[size_t(p)] = -1;
    if (ring_pos_[size_t(p % ring_)] == p) {
      ring_pos_[size_t(p % ring_)] = -1;
      ring_group_[size_t(p % ring_)] = -1;
    }
  }
  length_ = n;
  ++version_;
  return true;
}

int64_t KvCache::bytes() const {
  int64_t b = 0;
  for (size_t l = 0; l < k_.size(); ++l) b += k_[l].nbytes() + v_[l].nbytes();
  return b;
}

}  // namespace unicorn::gemma3
