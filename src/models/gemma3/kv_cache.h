// The key/value cache of one sequence. Full-attention layers keep every position of the
// context; sliding-window layers keep a ring buffer of window + chunk slots (a chunk of new
// tokens must still see the window before it). Every slot records its position and image
// group, so the attention mask is computed from the slots themselves.
#pragma once

#include <span>
#include <vector>

#include "core/tensor.h"
#include "models/gemma3/config.h"
#include "ops/backend.h"

namespace unicorn::gemma3 {

class KvCache {
 public:
  // context: most positions this sequence may hold; max_chunk: most tokens added at once.
  KvCache(Backend& backend, const TextConfig& config, int64_t context, int64_t max_chunk);

  int64_t context() const { return context_; }
  int64_t max_chunk() const { return max_chunk_; }
  int64_t length() const { return length_; }  // positions filled; the next token's position

  // Slots for the next n = groups.size() positions; call commit() once all layers are written.
  struct Step {
    std::vector<int32_t> positions;  // [n]
    std::vector<int32_t> groups;     // [n]
    std::vector<int32_t> full_slots, sliding_slots;
    bool operator==(const Step&) const = default;
  };
  Step plan(std::span<const int32_t> groups) const;
  void commit(const Step& step);

  // Layer l's caches: [slots_l, n_kv_heads * head_dim] f32, and the number of slots in use
  // (after the step's positions are written).
  Tensor& keys(int64_t layer) { return k_[size_t(layer)]; }
  Tensor& values(int64_t layer) { return v_[size_t(layer)]; }
  // Slot metadata for a layer type, as it will be once `step` is committed, and the slots that
  // hold every key the step's queries may see: `count` of them from `first`, on past the last
  // slot to slot 0 (AttentionMask::key_first / key_count; a sliding window's span of the ring).
  // Made once per layer type and step (every layer of a type asks for the same): the view stays
  // valid until the cache changes or the same type is asked about another step.
  struct SlotView {
    std::span<const int32_t> pos, group;
    int64_t used;
    int64_t first, count;
  };
  SlotView slots_after(bool sliding, const Step& step);

  // Forgets every position from n on (n <= length). Sliding layers can only go back as far as
  // their ring still holds the window: returns false (and changes nothing) otherwise.
  bool truncate(int64_t n);
  void clear() { truncate_all(); }
  int64_t bytes() const;

 private:
  void truncate_all();
  const TextConfig& config_;
  int64_t context_, max_chunk_, ring_;
  int64_t length_ = 0;
  std::vector<Tensor> k_, v_;
  // Slot metadata: committed, and for each layer type (full, sliding) a copy with a planned step
  // applied, kept for that step while the committed metadata stays as it was (version_).
  std::vector<int32_t> full_pos_, full_group_, ring_pos_, ring_group_;
  uint64_t version_ = 0;  // counts changes to the committed metadata
  struct After {
    uint64_t version = ~uint64_t(0);
    Step step;
    std::vector<int32_t> pos, group;
    SlotView view{};
  };
  After after_[2];
};

}  // namespace unicorn::gemma3
