#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

// A <0xNN> piece's byte, or -1.
int16_t byte_of_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) -> int {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : int16_t(hi * 16 + lo);
}

// Ids of pieces by text for the million substring lookups that deriving the merges takes.
// Open addressing over 64-bit polynomial hashes: a substring's hash comes from its piece's
// prefix hashes in O(1), and most misses stop at an empty slot without reading any text.
// (std::unordered_map took seconds here: a cache miss per bucket, node and key.)
class PieceIndex {
 public:
  explicit PieceIndex(std::span<const std::string_view> pieces) : pieces_(pieces) {
    size_t cap = 16;
    int bits = 4;
    for (; cap < 2 * pieces.size(); cap *= 2) ++bits;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    shift_ = 64 - bits;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const uint64_t h = hash(pieces[i]);
      size_t at = slot_of(h);
      while (slots_[at].id >= 0 && !(slots_[at].hash == h && pieces_[size_t(slots_[at].id)] == pieces[i]))
        at = (at + 1) & mask_;
      slots_[at] = {h, int32_t(i)};  // a repeated piece: the last id wins, as in llama.cpp's map
    }
  }
  static uint64_t extend(uint64_t h, unsigned char c) { return h * kBase + c + 1; }
  static uint64_t hash(std::string_view s) {
    uint64_t h = 0;
    for (char c : s) h = extend(h, static_cast<unsigned char>(c));
    return h;
  }
  // The id of `s` whose hash is `h`, or -1.
  int32_t find(std::string_view s, uint64_t h) const {
    for (size_t at = slot_of(h);; at = (at + 1) & mask_) {
      const Slot& slot = slots_[at];
      if (slot.id < 0) return -1;
      if (slot.hash == h && pieces_[size_t(slot.id)] == s) return slot.id;
    }
  }
  static constexpr uint64_t kBase = 0x100000001b3ull;

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;
  };
  // Multiplicative hashing: the product's top bits are the well-mixed ones.
  size_t slot_of(uint64_t h) const { return size_t((h * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::span<const std::string_view> pieces_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 60;
};

// The merges that make llama.cpp's SentencePiece tokenization (see the header): for every
// normal piece, each split into two pieces merges into it, ranked by the piece's score
// (equal scores share a rank, so the leftmost pair goes first, as in llama.cpp's queue).
std::vector<BpeModel::RankedMerge> merges_by_score(const SentencePieceVocab& v) {
  const size_t n = v.pieces.size();
  const PieceIndex index(v.pieces);

  std::vector<float> distinct;
  for (size_t i = 0; i < n; ++i)
    if (v.types[i] == TokenType::Normal) distinct.push_back(v.scores[i]);
  std::sort(distinct.begin(), distinct.end(), std::greater<float>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  auto rank_of = [&](float score) {
    return uint32_t(std::lower_bound(distinct.begin(), distinct.end(), score, std::greater<float>()) - distinct.begin());
  };

  std::vector<BpeModel::RankedMerge> merges;
  merges.reserve(n * 2);
  std::vector<uint64_t> prefix, power;  // prefix[k]: hash of p[0, k); power[k]: kBase^k
  for (size_t i = 0; i < n; ++i) {
    if (v.types[i] != TokenType::Normal) continue;
    const std::string_view p = v.pieces[i];
    prefix.assign(p.size() + 1, 0);
    power.assign(p.size() + 1, 1);
    for (size_t k = 0; k < p.size(); ++k) {
      prefix[k + 1] = PieceIndex::extend(prefix[k], static_cast<unsigned char>(p[k]));
      power[k + 1] = power[k] * PieceIndex::kBase;
    }
    if (index.find(p, prefix[p.size()]) != int32_t(i)) continue;  // a repeated piece: only the last id
    const uint32_t rank = rank_of(v.scores[i]);
    uint32_t cp = 0;
    for (size_t k = utf8::decode_one(p, 0, cp); k > 0 && k < p.size();) {
      const int32_t l = index.find(p.substr(0, k), prefix[k]);
      if (l >= 0) {
        const uint64_t right = prefix[p.size()] - prefix[k] * power[p.size() - k];
        const int32_t r = index.find(p.substr(k), right);
        if (r >= 0) merges.push_back({l, r, int32_t(i), rank});
      }
      const size_t len = utf8::decode_one(p, k, cp);
      if (len == 0) break;  // not UTF-8: no further character boundaries to split at
      k += len;
    }
  }
  return merges;
}

}  // namespace

bool has_gguf_vocab(const GgufFile& file) { return file.has("tokenizer.ggml.tokens"); }

SentencePieceVocab read_gguf_vocab(const GgufFile& f) {
  const std::string model = f.get_string_or("tokenizer.ggml.model", "");
  if (model != "llama")
    fail("{}: tokenizer.ggml.model is '{}'; only the SentencePiece-style 'llama' vocabulary (as Gemma's GGUF files "
         "embed) is supported", f.path(), model);
  SentencePieceVocab v;
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", f.path());
  if (n > size_t(INT32_MAX)) fail("{}: tokenizer.ggml.tokens has {} entries; too many", f.path(), n);
  v.pieces.assign(tokens.begin(), tokens.end());
  // Scores and types are optional in llama.cpp (0 and normal when absent).
  if (f.has("tokenizer.ggml.scores")) {
    v.scores = f.get_f32_array("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", f.path(), v.scores.size(), n);
    for (size_t i = 0; i < n; ++i)
      if (std::isnan(v.scores[i])) fail("{}: tokenizer.ggml.scores[{}] is NaN", f.path(), i);
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (f.has("tokenizer.ggml.token_type")) {
    const std::vector<int32_t> types = f.get_i32_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.path(), types.size(), n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6)
        fail("{}: tokenizer.ggml.token_type[{}] is {} (expected 0 to 6)", f.path(), i, types[i]);
      v.types.push_back(TokenType(types[i]));
    }
  } else {
    v.types.assign(n, TokenType::Normal);
  }
  // ref: llama-vocab.cpp: SentencePiece vocabularies default to bos 1, eos 2, unk 0.
  auto id = [&](const char* key, int64_t fallback) {
    const int64_t i = f.get_int_or(key, fallback);
    if (i < -1 || i >= int64_t(n)) fail("{}: {} is {}, outside the vocabulary (size {})", f.path(), key, i, n);
    return int32_t(i);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id", 1);
  v.eos_id = id("tokenizer.ggml.eos_token_id", 2);
  v.unk_id = id("tokenizer.ggml.unknown_token_id", 0);
  if (v.bos_id < 0 || v.eos_id < 0) fail("{}: the vocabulary needs a bos and an eos token", f.path());
  v.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", true);
  // llama.cpp prepends a space to the text when this is true (its default); Gemma's is false.
  if (f.get_bool_or("tokenizer.ggml.add_space_prefix", true))
    fail("{}: tokenizer.ggml.add_space_prefix is true or absent; only vocabularies without the space prefix (as "
         "Gemma's) are supported", f.path());
  return v;
}

Tokenizer Tokenizer::from_sentencepiece(const SentencePieceVocab& v, const std::string& where) {
  const size_t n = v.pieces.size();
  if (v.scores.size() != n || v.types.size() != n)
    fail("{}: {} pieces but {} scores and {} token types", where, n, v.scores.size(), v.types.size());
  Tokenizer t;
  t.bpe_ = BpeModel::from_pieces(v.pieces, merges_by_score(v), /*byte_fallback=*/true, v.unk_id, where);
  // Control, user-defined and unknown pieces are cut out of the raw text before anything
  // else (llama.cpp's tokenizer_st_partition; HF's added tokens); control and unknown ones
  // are special (left out by decode with skip_special, as llama.cpp renders them empty).
  t.special_.assign(n, false);
  t.byte_value_.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const TokenType type = v.types[i];
    if (type == TokenType::Control || type == TokenType::UserDefined || type == TokenType::Unknown) {
      if (!v.pieces[i].empty()) t.added_.add(v.pieces[i], int32_t(i));
      t.special_[i] = type != TokenType::UserDefined;
    } else if (type == TokenType::Byte) {
      t.byte_value_[i] = byte_of_piece(v.pieces[i]);
      if (t.byte_value_[i] < 0) fail("{}: token {} ('{}') has type byte but is not spelled <0xNN>", where, i, v.pieces[i]);
    }
  }
  // SentencePiece with add_space_prefix off: spaces become '▁' and nothing else is split;
  // decoding turns '▁' back into spaces and byte pieces into bytes.
  t.normalize_ = {{" ", "\xE2\x96\x81"}};
  t.decode_replace_ = {{"\xE2\x96\x81", " "}};
  t.decode_byte_fallback_ = true;
  t.options_.add_bos_token = v.add_bos;
  t.options_.bos_token = std::string(v.pieces[size_t(v.bos_id)]);
  t.options_.eos_token = std::string(v.pieces[size_t(v.eos_id)]);
  t.bos_id_ = v.bos_id;
  t.eos_id_ = v.eos_id;
  return t;
}

Tokenizer tokenizer_from_gguf(const GgufFile& file) {
  return Tokenizer::from_sentencepiece(read_gguf_vocab(file), file.path() + " (embedded tokenizer)");
}

}  // namespace unicorn
