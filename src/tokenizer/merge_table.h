// The BPE merge table: (left id, right id) -> (rank, merged id), as an open-addressing hash
// table. Encoding does one lookup per candidate pair, so this is the tokenizer's hot path;
// a flat table with a multiplicative hash is several times faster than std::unordered_map
// and builds the 514906 Gemma 3 merges in a few milliseconds.
#pragma once

#include <cstdint>
#include <vector>

namespace unicorn {

struct Merge {
  uint32_t rank;    // position in tokenizer.json's merges list: lower merges first
  int32_t merged;   // id of left + right
};

class MergeTable {
 public:
  MergeTable() = default;
  explicit MergeTable(size_t expected) { reserve(expected); }

  // Inserts or replaces (a later duplicate wins, as in HF tokenizers' HashMap collect).
  void insert(int32_t left, int32_t right, Merge m) {
    if ((size_ + 1) * 2 > slots_.size()) reserve(slots_.empty() ? 16 : slots_.size());
    Slot& s = find_slot(key(left, right));
    if (s.key == kEmpty) ++size_;
    s.key = key(left, right);
    s.merge = m;
  }

  // The merge of the pair, or nullptr when the pair never merges.
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(left, right);
    for (size_t i = hash(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);  // ids are non-negative int32: never a key
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };

  static uint64_t key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  size_t hash(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }

  Slot& find_slot(uint64_t k) {
    for (size_t i = hash(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k || slots_[i].key == kEmpty) return slots_[i];
    }
  }

  // Grows to a power of two holding `n` entries at most half full, and reinserts.
  void reserve(size_t n) {
    size_t cap = 16;
    int bits = 4;
    while (cap < 2 * n || cap < 2 * (size_ + 1)) {
      cap *= 2;
      ++bits;
    }
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    shift_ = 64 - bits;
    for (const Slot& s : old) {
      if (s.key != kEmpty) find_slot(s.key) = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

}  // namespace unicorn
