// The BPE model of a Hugging Face tokenizer.json ("type": "BPE"): vocabulary, merges by
// rank, byte fallback to <0xNN> pieces. ref: huggingface/tokenizers models/bpe/{model,word}.rs
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/merge_table.h"

namespace unicorn {

struct TokenizerJson;

class BpeModel {
 public:
  BpeModel() = default;
  // Move-only: ids_ holds views into pieces_, whose buffer a move keeps and a copy would not.
  BpeModel(BpeModel&&) = default;
  BpeModel& operator=(BpeModel&&) = default;
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;
  // Builds the model from tokenizer.json's "model" section; `where` names the file in
  // errors (unsupported options, ids out of order, merges that name unknown pieces).
  static BpeModel build(const TokenizerJson& tj, const std::string& where);

  // A merge given by ids, with the rank that orders it (lower first; equal ranks go left
  // to right), for vocabularies that come without a merges list (gguf_vocab.h).
  struct RankedMerge {
    int32_t left, right, merged;
    uint32_t rank;
  };
  // Builds a model from pieces by id and ranked merges; `unk_id` -1 for none. The merged
  // id need not spell left + right (the caller vouches for it).
  static BpeModel from_pieces(std::span<const std::string_view> pieces, std::span<const RankedMerge> merges,
                              bool byte_fallback, int32_t unk_id, const std::string& where);

  // Appends the ids of one pre-tokenized, normalized word: each character becomes its piece
  // (or its UTF-8 bytes as <0xNN> pieces, or <unk>), then pairs merge lowest rank first.
  // `word` must be valid UTF-8 (the tokenizer checks the whole input once).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // Pieces are indexed by id: 0 .. size() - 1.
  int32_t size() const { return int32_t(offsets_.size()) - 1; }
  std::string_view piece(int32_t id) const {
    return {pieces_.data() + offsets_[size_t(id)], offsets_[size_t(id) + 1] - offsets_[size_t(id)]};
  }
  // The id of a piece, or -1.
  int32_t find(std::string_view piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }
  size_t merge_count() const { return merges_.size(); }

 private:
  int32_t char_id(uint32_t cp) const;
  // Fills pieces_, offsets_, ids_ and the character and byte lookups from pieces by id.
  void set_pieces(std::span<const std::string_view> by_id);

  std::vector<char> pieces_;       // all pieces back to back, by id (a vector: never SSO)
  std::vector<uint32_t> offsets_;  // piece i is pieces_[offsets_[i], offsets_[i + 1])
  std::unordered_map<std::string_view, int32_t> ids_;  // views into pieces_
  MergeTable merges_;
  std::array<int32_t, 128> ascii_ids_{};               // single ASCII character pieces, or -1
  std::unordered_map<uint32_t, int32_t> char_ids_;     // other single-character pieces
  std::array<int32_t, 256> byte_ids_{};                // <0xNN> pieces, or -1
  bool byte_fallback_ = false;
  bool has_all_bytes_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
};

}  // namespace unicorn
