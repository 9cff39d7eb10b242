#include "tokenizer/gguf_vocab.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

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

// The merges that make llama.cpp's SentencePiece tokenization (see the header): for every
// normal piece, each split into two pieces merges into it, ranked by the piece's score
// (equal scores share a rank, so the leftmost pair goes first, as in llama.cpp's queue).
std::vector<BpeModel::RankedMerge> merges_by_score(const SentencePieceVocab& v) {
  const size_t n = v.pieces.size();
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) ids.insert_or_assign(v.pieces[i], int32_t(i));  // last wins, as llama.cpp's map

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
  for (size_t i = 0; i < n; ++i) {
    if (v.types[i] != TokenType::Normal) continue;
    const std::string_view p = v.pieces[i];
    const auto merged = ids.find(p);
    if (merged->second != int32_t(i)) continue;  // a repeated piece: only the id lookups find
    const uint32_t rank = rank_of(v.scores[i]);
    uint32_t cp = 0;
    for (size_t k = utf8::decode_one(p, 0, cp); k > 0 && k < p.size();) {
      const auto l = ids.find(p.substr(0, k));
      const auto r = ids.find(p.substr(k));
      if (l != ids.end() && r != ids.end()) merges.push_back({l->second, r->second, int32_t(i), rank});
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
